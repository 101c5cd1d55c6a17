"""The portal's routes through the Flask test client: sign-in, CSRF, roles, error pages,
security headers, escaping, and the forms' field errors (the API's own)."""

from __future__ import annotations

import re
import uuid

import pytest
from conftest import TEST_ADMIN_TOKEN
from job_rows import insert_job, register_fleet, set_row_status

from dispatcher import db
from dispatcher.tokens import create_api_token, revoke_api_token


def csrf_of(html: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match, "page has no CSRF field"
    return match.group(1)


def sign_in(client, token: str) -> str:
    """Sign in with ``token``; return the session's CSRF token."""
    page = client.get("/portal/login").get_data(as_text=True)
    answer = client.post("/portal/login", data={"token": token, "csrf_token": csrf_of(page)})
    assert answer.status_code == 302, answer.get_data(as_text=True)
    return csrf_of(client.get("/portal/executions").get_data(as_text=True))


@pytest.fixture
def admin(client):
    return client, sign_in(client, TEST_ADMIN_TOKEN)


@pytest.fixture
def viewer(app):
    token, _ = create_api_token("viewer", "portal viewer")
    client = app.test_client()
    return client, sign_in(client, token)


def test_root_redirects_to_the_portal(client):
    assert client.get("/").headers["Location"].endswith("/portal/")


@pytest.mark.parametrize("path", ["/portal/executions", "/portal/templates", "/portal/devices",
                                  "/portal/handlers", f"/portal/executions/{uuid.uuid4()}"])
def test_no_session_redirects_to_login(client, path):
    answer = client.get(path)
    assert answer.status_code == 302
    assert "/portal/login" in answer.headers["Location"]


def test_a_post_without_session_or_csrf_is_refused(client):
    answer = client.post("/portal/templates/new", data={"name": "x"})
    assert answer.status_code == 400
    assert "CSRF" in answer.get_data(as_text=True)


def test_login_cookie_and_bad_token(client):
    page = client.get("/portal/login").get_data(as_text=True)
    bad = client.post("/portal/login", data={"token": "nope", "csrf_token": csrf_of(page)})
    assert bad.status_code == 401
    assert "not a valid admin or viewer token" in bad.get_data(as_text=True)
    good = client.post("/portal/login", data={"token": TEST_ADMIN_TOKEN,
                                              "csrf_token": csrf_of(page)})
    cookie = good.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Expires=" in cookie
    assert "Secure" not in cookie  # plain http here
    assert TEST_ADMIN_TOKEN not in cookie


def test_cookie_is_secure_over_https(client):
    page = client.get("/portal/login", base_url="https://localhost").get_data(as_text=True)
    answer = client.post("/portal/login", base_url="https://localhost",
                         data={"token": TEST_ADMIN_TOKEN, "csrf_token": csrf_of(page)})
    assert "Secure" in answer.headers["Set-Cookie"]


def test_device_tokens_cannot_sign_in(client):
    device = register_fleet(1)[0]
    page = client.get("/portal/login").get_data(as_text=True)
    answer = client.post("/portal/login", data={"token": device.token,
                                                "csrf_token": csrf_of(page)})
    assert answer.status_code == 401


def test_revoking_the_token_ends_the_session(app):
    token, record = create_api_token("viewer", "short-lived")
    client = app.test_client()
    sign_in(client, token)
    assert client.get("/portal/executions").status_code == 200
    revoke_api_token(record["id"])
    assert client.get("/portal/executions").status_code == 302


def test_logout_needs_csrf_and_ends_the_session(admin):
    client, csrf = admin
    assert client.post("/portal/logout", data={}).status_code == 400
    assert client.post("/portal/logout", data={"csrf_token": csrf}).status_code == 302
    assert client.get("/portal/executions").status_code == 302


def test_wrong_csrf_is_a_400_page(admin):
    client, _ = admin
    answer = client.post("/portal/templates/new", data={"csrf_token": "forged", "name": "x"})
    assert answer.status_code == 400
    assert answer.mimetype == "text/html"


@pytest.mark.parametrize("path", [f"/portal/executions/{uuid.uuid4()}",
                                  f"/portal/executions/{uuid.uuid4()}/live",
                                  f"/portal/executions/{uuid.uuid4()}/devices/{uuid.uuid4()}",
                                  f"/portal/devices/{uuid.uuid4()}", "/portal/templates/999999",
                                  "/portal/templates/999999/edit", "/portal/handlers/nothing",
                                  "/portal/no-such-page"])
def test_unknown_ids_are_404_pages(admin, path):
    client, _ = admin
    answer = client.get(path)
    assert answer.status_code == 404
    assert answer.mimetype == "text/html"
    assert "Not found" in answer.get_data(as_text=True)


def test_security_headers(admin):
    client, _ = admin
    answer = client.get("/portal/executions")
    csp = answer.headers["Content-Security-Policy"]
    assert "frame-ancestors 'none'" in csp
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp
    assert answer.headers["X-Content-Type-Options"] == "nosniff"
    assert "<script>" not in answer.get_data(as_text=True).replace(
        '<script src="/portal/static/portal.js" defer></script>', "")


def test_viewer_sees_no_write_control_and_is_refused(viewer):
    client, csrf = viewer
    job_id = insert_job(register_fleet(2))
    page = client.get(f"/portal/executions/{job_id}").get_data(as_text=True)
    assert "Force cancel" not in page and "Execute a job" not in page
    for path in [f"/portal/executions/{job_id}/cancel", "/portal/templates/new",
                 "/portal/devices/new", "/portal/executions/new", "/portal/handlers/new"]:
        assert client.post(path, data={"csrf_token": csrf}).status_code == 403, path


def test_device_output_is_escaped(admin):
    client, _ = admin
    fleet = register_fleet(1, prefix="<b>pi")
    job_id = insert_job(fleet)
    set_row_status(job_id, fleet[0], "FAILED")
    with db.pool().connection() as conn:
        conn.execute("UPDATE device_job_status SET stdout = %s, reason = %s WHERE job_id = %s",
                     ("<script>alert(1)</script>", "<img src=x onerror=alert(2)>", job_id))
    page = client.get(f"/portal/executions/{job_id}/devices/{fleet[0].uuid}").get_data(
        as_text=True)
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "<img src=x" not in page and "<b>pi" not in page
    assert "&lt;b&gt;pi" in client.get(f"/portal/executions/{job_id}").get_data(as_text=True)


def test_bad_template_document_shows_the_api_field_error(admin):
    client, csrf = admin
    answer = client.post("/portal/templates/new", data={
        "csrf_token": csrf, "name": "broken", "category": "system",
        "job_document": '{"version": "1.0", "steps": []}', "parameters": "{}"})
    assert answer.status_code == 400
    assert re.search(r'class="field-error" id="job_document-error"', answer.get_data(as_text=True))


def test_cancel_is_audited_with_the_signed_in_identity(admin):
    client, csrf = admin
    job_id = insert_job(register_fleet(2))
    answer = client.post(f"/portal/executions/{job_id}/cancel", data={"csrf_token": csrf},
                         follow_redirects=True)
    assert "Canceled the job: 2 device(s) canceled." in answer.get_data(as_text=True)
    actors = {row["actor"] for row in db.all("recent_job_events", job_id=job_id, limit=10)}
    assert "admin:bootstrap (ADMIN_TOKEN)" in actors


def test_execute_form_refusals_land_next_to_the_field(admin):
    client, csrf = admin
    answer = client.post("/portal/executions/new", data={
        "csrf_token": csrf, "source": "custom", "job_name": "x",
        "job_document": '{"version": "1.0", "steps": [{"name": "a", "type": "runCommand",'
                        ' "input": {"command": "true"}}]}',
        "target_type": "group", "device_type": "", "attributes": "", "policies": "{}"})
    assert answer.status_code == 400
    assert 'id="attributes-error"' in answer.get_data(as_text=True)


def test_target_count(admin):
    client, _ = admin
    register_fleet(3)
    assert client.get("/portal/targets/count?target_type=group&device_type=raspberry-pi"
                      ).get_json() == {"devices": 3}
    assert client.get("/portal/targets/count?target_type=group&attributes=[1]"
                      ).status_code == 400


def test_portal_can_be_turned_off(settings):
    from dataclasses import replace

    from api.app import create_app

    app = create_app(replace(settings, portal_enabled=False))
    assert app.test_client().get("/portal/executions").status_code == 404


def test_cors_preflight_for_allowed_origins_only(settings):
    from dataclasses import replace

    from api.app import create_app

    client = create_app(replace(settings, cors_allowed_origins="http://ui.example")).test_client()
    preflight = {"Access-Control-Request-Method": "GET",
                 "Access-Control-Request-Headers": "authorization"}
    allowed = client.options("/api/v1/devices", headers={"Origin": "http://ui.example",
                                                          **preflight})
    assert allowed.status_code == 204
    assert allowed.headers["Access-Control-Allow-Origin"] == "http://ui.example"
    assert "Authorization" in allowed.headers["Access-Control-Allow-Headers"]
    assert "Access-Control-Allow-Credentials" not in allowed.headers
    other = client.options("/api/v1/devices", headers={"Origin": "http://evil.example",
                                                        **preflight})
    assert "Access-Control-Allow-Origin" not in other.headers
    read = client.get("/api/v1/devices", headers={"Origin": "http://ui.example",
                                                  "Authorization": f"Bearer {TEST_ADMIN_TOKEN}"})
    assert read.headers["Access-Control-Allow-Origin"] == "http://ui.example"


def test_output_download_is_plain_text(admin):
    client, _ = admin
    fleet = register_fleet(1)
    job_id = insert_job(fleet)
    with db.pool().connection() as conn:
        conn.execute("UPDATE device_job_status SET stdout = %s WHERE job_id = %s",
                     ("<script>x</script>", job_id))
    answer = client.get(f"/portal/executions/{job_id}/devices/{fleet[0].uuid}/stdout.txt")
    assert answer.mimetype == "text/plain"
    assert answer.headers["X-Content-Type-Options"] == "nosniff"
    assert "attachment" in answer.headers["Content-Disposition"]
    assert answer.get_data(as_text=True) == "<script>x</script>"
