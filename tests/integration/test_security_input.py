"""Hostile input gets a clear 4xx: odd tokens, lone surrogates, trailing newlines, wrong types;
and nothing is learned about validation without a token."""

from __future__ import annotations

import json

import pytest
from job_rows import JOB_DOCUMENT, insert_job, next_url, register_fleet, status_url

from dispatcher import db
from dispatcher.errors import InvalidInput

LONE_SURROGATE = "\ud800"


def _json(value: object) -> bytes:
    """``value`` as JSON, lone surrogates escaped as JSON allows (``"\\ud800"``)."""
    return json.dumps(value).encode()


def post(client, path: str, body: object, headers: dict, method: str = "POST"):
    return client.open(path, method=method, data=_json(body),
                       headers={**headers, "Content-Type": "application/json"})


@pytest.fixture
def device(app):
    return register_fleet(1)[0]


@pytest.mark.parametrize("token", ["é" * 20, "tökén", "\u00ff"])
def test_a_non_ascii_bearer_token_is_401(client, device, token):
    headers = {"Authorization": f"Bearer {token}"}
    for path in ("/api/v1/devices", next_url(device)):
        response = client.get(path, headers=headers)
        assert response.status_code == 401, (path, response.get_json())


def test_lone_surrogates_in_text_fields_are_400_naming_the_field(client, admin_headers, device):
    job_id = insert_job([device])
    cases = [
        ("POST", "/api/v1/devices", {"device_name": LONE_SURROGATE}, "device_name", admin_headers),
        ("POST", "/api/v1/jobs/handlers", {"name": "h", "script_type": "bash",
                                           "script_content": "echo " + LONE_SURROGATE},
         "script_content", admin_headers),
        ("POST", "/api/v1/jobs/execute", {"job_name": "x" + LONE_SURROGATE,
                                          "job_document": JOB_DOCUMENT, "target_type": "all"},
         "job_name", admin_headers),
        ("POST", f"/api/v1/jobs/executions/{job_id}/cancel", {"reason": LONE_SURROGATE},
         "reason", admin_headers),
        ("PATCH", status_url(device, job_id), {"status": "IN_PROGRESS",
                                               "stdout": "ok" + LONE_SURROGATE},
         "stdout", device.headers),
        ("PATCH", status_url(device, job_id), {"status": "IN_PROGRESS",
                                               "status_details": {"k": LONE_SURROGATE}},
         "status_details", device.headers),
    ]
    for method, path, body, field, headers in cases:
        response = post(client, path, body, headers, method)
        assert response.status_code == 400, (path, response.get_json())
        assert field in response.get_json()["errors"], (path, response.get_json())


@pytest.mark.parametrize("step_type", [[], {}, ["runCommand"]])
def test_a_step_type_that_is_not_a_string_is_400(client, admin_headers, device, step_type):
    document = {"version": "1.0",
                "steps": [{"name": "s", "type": step_type, "input": {"command": "ls"}}]}
    executed = post(client, "/api/v1/jobs/execute", {"job_name": "j", "job_document": document,
                                                     "target_type": "all"}, admin_headers)
    template = post(client, "/api/v1/jobs/templates", {"name": "t", "job_document": document},
                    admin_headers)
    for response in (executed, template):
        assert response.status_code == 400, response.get_json()
        assert "job_document" in response.get_json()["errors"]


@pytest.mark.parametrize("path, body", [
    ("/api/v1/devices", {"device_name": "pi", "device_type": "pi\n"}),
    ("/api/v1/jobs/handlers", {"name": "h\n", "script_type": "bash", "script_content": "echo"}),
    ("/api/v1/jobs/handlers", {"name": "h", "script_type": "bash", "script_content": "echo",
                               "permissions": "700\n"}),
    ("/api/v1/jobs/templates", {"name": "t", "job_document": {
        "version": "1.0", "steps": [{"name": "s", "type": "runHandler",
                                     "input": {"handler": "h\n"}}]}}),
    ("/api/v1/jobs/templates", {"name": "t", "job_document": JOB_DOCUMENT,
                                "parameters": {"NAME\n": {}}}),
])
def test_a_trailing_newline_is_not_a_full_match(client, admin_headers, path, body):
    response = post(client, path, body, admin_headers)
    assert response.status_code == 400, response.get_json()


def test_a_check_violation_does_not_echo_the_failing_row(app):
    with pytest.raises(InvalidInput) as refused:
        db.one("insert_api_token", name="name-of-a-secret", role="superuser",
               token_hash=b"h" * 32, created_by="someone")
    assert "Failing row" not in refused.value.message
    assert "name-of-a-secret" not in refused.value.message
    assert refused.value.message == "api_tokens_role_check is not valid"


def test_a_fractional_exit_code_is_400(client, device):
    job_id = insert_job([device])
    response = post(client, status_url(device, job_id), {"status": "SUCCEEDED", "exit_code": 1.5},
                    device.headers, "PATCH")
    assert response.status_code == 400
    assert "exit_code" in response.get_json()["errors"]


def test_status_details_are_capped_like_stdout(client, settings, device):
    job_id = insert_job([device])
    details = {"blob": "x" * (settings.output_cap_bytes + 1)}
    response = post(client, status_url(device, job_id),
                    {"status": "IN_PROGRESS", "status_details": details}, device.headers, "PATCH")
    assert response.status_code == 400
    assert "status_details" in response.get_json()["errors"]


def test_a_status_report_is_refused_before_its_body_is_parsed(client, device):
    job_id = insert_job([device])
    garbage = b"{" * 1000
    for headers, code in (({}, 401), ({"Authorization": "Bearer not-a-token"}, 401),
                          (register_fleet(1, prefix="other")[0].headers, 403)):
        response = client.patch(status_url(device, job_id), data=garbage,
                                headers={**headers, "Content-Type": "application/json"})
        assert response.status_code == code, (headers, response.get_json())
    # The device's own token reaches the parser.
    response = client.patch(status_url(device, job_id), data=garbage,
                            headers={**device.headers, "Content-Type": "application/json"})
    assert response.status_code == 400


def test_a_status_report_after_a_poll_still_works(client, device):
    job_id = insert_job([device])
    assert client.get(next_url(device), headers=device.headers).status_code == 200
    response = post(client, status_url(device, job_id), {"status": "IN_PROGRESS"},
                    device.headers, "PATCH")
    assert response.status_code == 200, response.get_json()


@pytest.mark.parametrize("method", ["GET", "HEAD"])
def test_a_device_filter_is_not_validated_before_the_token(client, device, method):
    path = "/api/v1/devices?filter=not-json&limit=-5"
    assert client.open(path, method=method).status_code == 401
    assert client.open(path, method=method,
                       headers={"Authorization": "Bearer nope"}).status_code == 401
    assert client.open(path, method=method, headers=device.headers).status_code == 403


def nested(depth: int) -> object:
    value: object = []
    for _ in range(depth):
        value = [value]
    return value


@pytest.mark.parametrize("path", ["/api/v1/jobs/execute/preview", "/api/v1/jobs/execute",
                                  "/api/v1/jobs/templates"])
def test_a_document_nested_hundreds_deep_is_400(client, admin_headers, viewer_headers, path):
    document = {**JOB_DOCUMENT, "_comment": nested(600)}
    body = {"name": "t", "job_name": "j", "job_document": document, "target_type": "all"}
    headers = viewer_headers if path.endswith("preview") else admin_headers
    response = post(client, path, body, headers)
    assert response.status_code == 400, response.get_json()
    assert "nested" in response.get_json()["message"]


def test_security_headers_are_on_every_response(client, admin_headers):
    for path in ("/api/v1/devices", "/api/v1/nowhere", "/health"):
        response = client.get(path, headers=admin_headers)
        assert response.headers["X-Content-Type-Options"] == "nosniff", path
        assert response.headers["Content-Security-Policy"] == "frame-ancestors 'none'", path


def test_answers_carrying_a_token_are_not_stored(client, admin_headers):
    created = post(client, "/api/v1/devices", {"device_name": "pi"}, admin_headers)
    assert created.status_code == 201
    assert created.headers["Cache-Control"] == "no-store"
    rotated = client.post(f"/api/v1/devices/{created.get_json()['uuid']}/token",
                          headers=admin_headers)
    assert rotated.status_code == 200
    assert rotated.headers["Cache-Control"] == "no-store"
