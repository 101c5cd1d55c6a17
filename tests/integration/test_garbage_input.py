"""No input makes the devices, templates or handlers endpoints answer 500."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
from job_rows import quietly

from dispatcher.fleet.devices import register_device

GARBAGE_BODIES = [
    b"[]",
    b"[1, 2]",
    b'"a string"',
    b"null",
    b"42",
    b"{",
    b"{'single': 'quotes'}",
    b"\xff\xfe\x00garbage",
    b'{"name": NaN}',
    b'{"device_name": 1e999999}',
    b'{"device_name": ' + b"9" * 5000 + b"}",
    b"[" * 5000 + b"]" * 5000,
    b'{"a": ' * 3000 + b"1" + b"}" * 3000,
    json.dumps({"name": "x\x00y", "device_name": "x\x00y", "description": "\x00",
                "script_content": "\x00", "attributes": {"k": "\x00"}}).encode(),
    json.dumps({"name": ["list"], "device_name": {"obj": 1}, "job_document": "doc",
                "script_type": 5, "default_args": [None], "parameters": [],
                "category": None, "is_active": "perhaps", "uuid": 12}).encode(),
    json.dumps({"name": "n", "job_document": {"version": "1.0", "steps": [
        {"name": "s", "type": "runCommand", "input": {"command": "ls"},
         "timeoutSeconds": 10**30}]}, "parameters": {"\x00": "x"}}).encode(),
]


@pytest.fixture
def targets(client, admin_headers) -> dict:
    device, _ = quietly(register_device("pi"))
    template = client.post("/api/v1/jobs/templates", json={
        "name": "t", "job_document": {"version": "1.0", "steps": [
            {"name": "s", "type": "runCommand", "input": {"command": "ls"}}]},
    }, headers=admin_headers).get_json()
    client.post("/api/v1/jobs/handlers", json={"name": "h", "script_type": "bash",
                                               "script_content": "echo"}, headers=admin_headers)
    return {"device": device["uuid"], "template": template["id"]}


def write_endpoints(t: dict) -> list[tuple[str, str]]:
    return [
        ("POST", "/api/v1/devices"),
        ("PATCH", f"/api/v1/devices/{t['device']}"),
        ("POST", "/api/v1/jobs/templates"),
        ("PUT", f"/api/v1/jobs/templates/{t['template']}"),
        ("POST", "/api/v1/jobs/handlers"),
        ("PUT", "/api/v1/jobs/handlers/h"),
    ]


def test_garbage_bodies_are_client_errors(client, admin_headers, targets):
    headers = {**admin_headers, "Content-Type": "application/json"}
    for method, path in write_endpoints(targets):
        for body in GARBAGE_BODIES:
            response = client.open(path, method=method, data=body, headers=headers)
            assert 400 <= response.status_code < 500, (method, path, body[:80],
                                                        response.get_json())
            assert response.get_json()["code"] == response.status_code


def test_huge_numbers_in_attributes_are_kept_exactly(client, admin_headers):
    attributes = {"big": 10**300, "small": -(10**300), "nested": [[[{}]]]}
    response = client.post("/api/v1/devices", json={"device_name": "n", "attributes": attributes},
                           headers=admin_headers)
    assert response.status_code == 201
    assert response.get_json()["attributes"] == attributes


def test_malformed_json_says_so(client, admin_headers):
    response = client.post("/api/v1/devices", data=b'{"device_name": "pi",}',
                           headers={**admin_headers, "Content-Type": "application/json"})
    assert response.status_code == 400
    assert response.get_json()["message"].startswith("Malformed JSON body:")


def test_bodies_that_are_not_json_are_refused(client, admin_headers, targets):
    for method, path in write_endpoints(targets):
        for content_type in ("text/plain", "application/x-www-form-urlencoded", None):
            headers = dict(admin_headers)
            if content_type:
                headers["Content-Type"] = content_type
            response = client.open(path, method=method, data=b"name=x", headers=headers)
            assert response.status_code == 415, (method, path, content_type)


BAD_PATHS = [
    "/api/v1/devices/not-a-uuid",
    "/api/v1/devices/8479359e-dbeb-4858-813c-e8a9008dde0",
    "/api/v1/devices/8479359e-dbeb-4858-813c-e8a9008dde04x/token",
    "/api/v1/devices/%00/handlers/h",
    "/api/v1/jobs/templates/-1",
    "/api/v1/jobs/templates/99999999999999999999999999999",
    "/api/v1/jobs/templates/1e3",
    "/api/v1/jobs/handlers/%00",
    "/api/v1/jobs/handlers/" + "x" * 5000,
    "/api/v1/devices?limit=-1",
    "/api/v1/devices?limit=99999999999999999999999",
    "/api/v1/devices?offset=-5",
    "/api/v1/devices?offset=abc",
    "/api/v1/devices?filter=%00",
    "/api/v1/devices?filter=" + "%5B" * 5000,
    "/api/v1/devices?filter=%7B%22a%22%3ANaN%7D",
    "/api/v1/devices?filter=%7B%22a%22%3A%22%00%22%7D",
    "/api/v1/devices?device_type=%00",
    "/api/v1/jobs/templates?category=%00",
    "/api/v1/jobs/templates?active=%00",
    "/api/v1/jobs/templates?limit=0",
    "/api/v1/jobs/handlers?limit=501",
    "/api/v1/jobs/handlers?offset=-1",
]


def test_bad_paths_and_queries_are_client_errors(client, admin_headers):
    for path in BAD_PATHS:
        for method in ("GET", "PUT", "PATCH", "DELETE", "POST"):
            response = client.open(path, method=method, json={}, headers=admin_headers)
            assert 400 <= response.status_code < 500, (method, path, response.get_json())


def test_body_over_the_limit_is_413(settings, admin_headers):
    from api.app import create_app

    client = create_app(replace(settings, max_body_bytes=1024)).test_client()
    big = {"device_name": "pi", "attributes": {"note": "x" * 2000}}
    response = client.post("/api/v1/devices", json=big, headers=admin_headers)
    assert response.status_code == 413
    assert response.get_json()["code"] == 413
    small = {"device_name": "pi", "attributes": {"note": "x" * 100}}
    assert client.post("/api/v1/devices", json=small, headers=admin_headers).status_code == 201
    script = {"name": "h", "script_type": "bash", "script_content": "x" * 2000}
    assert client.post("/api/v1/jobs/handlers", json=script,
                       headers=admin_headers).status_code == 413
