"""Who may call what: 401 without a valid token, 403 for a valid token on the wrong resource."""

from __future__ import annotations

import pytest
from job_rows import Device, handler_document, insert_job, quietly

from dispatcher.fleet.devices import register_device

DOCUMENT = {"version": "1.0", "steps": [{"name": "df", "type": "runCommand",
                                         "input": {"command": "df,-h"}}]}


@pytest.fixture
def world(client, admin_headers) -> dict:
    """Two devices with their tokens, one template, one handler."""
    device_a, token_a = quietly(register_device("device-a"))
    device_b, token_b = quietly(register_device("device-b"))
    template = client.post("/api/v1/jobs/templates", json={"name": "t", "job_document": DOCUMENT},
                           headers=admin_headers).get_json()
    client.post("/api/v1/jobs/handlers", json={"name": "h", "script_type": "bash",
                                               "script_content": "echo hi"},
                headers=admin_headers)
    client.post("/api/v1/groups", json={"name": "g", "filter": {"site": "berlin"}},
                headers=admin_headers)
    # Each device may fetch "h" only because a job of its own runs it.
    insert_job([Device(d["uuid"], d["device_name"], "") for d in (device_a, device_b)],
               document=handler_document("h"))
    return {"a": device_a["uuid"], "b": device_b["uuid"], "template": template["id"],
            "token_a": token_a, "token_b": token_b}


def admin_endpoints(w: dict) -> list[tuple[str, str, dict | None]]:
    """(method, path, body) of every admin endpoint; reads first, then writes."""
    return [
        ("GET", "/api/v1/devices", None),
        ("GET", f"/api/v1/devices/{w['a']}", None),
        ("GET", "/api/v1/jobs/templates", None),
        ("GET", f"/api/v1/jobs/templates/{w['template']}", None),
        ("GET", "/api/v1/jobs/handlers", None),
        ("GET", "/api/v1/jobs/handlers/h", None),
        ("GET", "/api/v1/groups", None),
        ("GET", "/api/v1/groups/g", None),
        ("POST", "/api/v1/devices", {"device_name": "x"}),
        ("POST", "/api/v1/groups", {"name": "g2", "devices": [str(w["a"])]}),
        ("PATCH", "/api/v1/groups/g", {"description": "x"}),
        ("PATCH", f"/api/v1/devices/{w['a']}", {"device_name": "x"}),
        ("POST", f"/api/v1/devices/{w['a']}/token", None),
        ("DELETE", f"/api/v1/devices/{w['a']}", None),
        ("POST", "/api/v1/jobs/templates", {"name": "t2", "job_document": DOCUMENT}),
        ("PUT", f"/api/v1/jobs/templates/{w['template']}", {"description": "x"}),
        ("DELETE", f"/api/v1/jobs/templates/{w['template']}", None),
        ("POST", "/api/v1/jobs/handlers", {"name": "h2", "script_type": "bash",
                                           "script_content": "echo"}),
        ("PUT", "/api/v1/jobs/handlers/h", {"description": "x"}),
        ("DELETE", "/api/v1/jobs/handlers/h", None),
    ]


def call(client, method: str, path: str, body: dict | None, headers: dict):
    return client.open(path, method=method, json=body, headers=headers)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.mark.parametrize("headers", [
    {},
    {"Authorization": "Bearer not-a-token"},
    {"Authorization": "Basic YWRtaW46YWRtaW4="},
    {"Authorization": "Bearer "},
])
def test_missing_or_invalid_token_is_401_everywhere(client, world, headers):
    endpoints = admin_endpoints(world) + [
        ("GET", f"/api/v1/devices/{world['a']}/handlers/h", None),
    ]
    for method, path, body in endpoints:
        response = call(client, method, path, body, headers)
        assert response.status_code == 401, (method, path)
        assert response.get_json()["code"] == 401


def test_viewer_reads_but_may_not_write(client, world, viewer_headers):
    for method, path, body in admin_endpoints(world):
        response = call(client, method, path, body, viewer_headers)
        if method == "GET":
            assert response.status_code == 200, (path, response.get_json())
        else:
            assert response.status_code == 403, (method, path)
            assert response.get_json()["message"] == "Viewer tokens may only read"


def test_device_token_is_refused_on_admin_endpoints(client, world):
    for method, path, body in admin_endpoints(world):
        response = call(client, method, path, body, bearer(world["token_a"]))
        assert response.status_code == 403, (method, path)


def test_device_token_reads_only_its_own_handler_endpoint(client, world, admin_headers,
                                                          viewer_headers):
    own = f"/api/v1/devices/{world['a']}/handlers/h"
    other = f"/api/v1/devices/{world['b']}/handlers/h"
    assert client.get(own, headers=bearer(world["token_a"])).status_code == 200
    assert client.get(other, headers=bearer(world["token_a"])).status_code == 403
    assert client.get(other, headers=bearer(world["token_b"])).status_code == 200
    # The device endpoint is for devices: admin and viewer tokens are not device tokens.
    assert client.get(own, headers=admin_headers).status_code == 403
    assert client.get(own, headers=viewer_headers).status_code == 403


def test_rotated_and_deleted_device_tokens_stop_working(client, world, admin_headers):
    own = f"/api/v1/devices/{world['a']}/handlers/h"
    client.post(f"/api/v1/devices/{world['a']}/token", headers=admin_headers)
    assert client.get(own, headers=bearer(world["token_a"])).status_code == 401
    client.delete(f"/api/v1/devices/{world['b']}", headers=admin_headers)
    other = f"/api/v1/devices/{world['b']}/handlers/h"
    assert client.get(other, headers=bearer(world["token_b"])).status_code == 401


def test_admin_may_call_every_endpoint(client, world, admin_headers):
    for method, path, body in admin_endpoints(world):
        response = call(client, method, path, body, admin_headers)
        assert response.status_code in (200, 201), (method, path, response.get_json())


def test_a_write_without_a_token_is_refused_before_its_body_is_read(client):
    """No token: 401, whatever the body, so an anonymous caller learns nothing of validation."""
    response = client.post("/api/v1/jobs/templates", json={"name": 42, "category": "nope"})
    assert response.status_code == 401
    assert response.get_json()["errors"] == {}
    response = client.post(
        "/api/v1/jobs/execute", data="{not json", content_type="application/json"
    )
    assert response.status_code == 401
