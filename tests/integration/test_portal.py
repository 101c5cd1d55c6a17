"""The portal's routes through the Flask test client: sign-in, CSRF, roles, error pages,
security headers, escaping, and the forms' field errors (the API's own)."""

from __future__ import annotations

import base64
import json
import re
import uuid

import psycopg
import pytest
from job_rows import insert_job, quietly, register_fleet, set_row_status
from suite_constants import TEST_ADMIN_TOKEN

from dispatcher import db
from dispatcher.fleet.tokens import create_api_token, revoke_api_token


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


@pytest.mark.parametrize("csrf", ["é", "\u00ff" * 43, "токен"])
def test_a_non_ascii_csrf_token_is_400(client, csrf):
    client.get("/portal/login")
    answer = client.post("/portal/login", data={"token": TEST_ADMIN_TOKEN, "csrf_token": csrf})
    assert answer.status_code == 400
    assert "CSRF" in answer.get_data(as_text=True)


@pytest.mark.parametrize("depth", [600, 5000, 100_000])
@pytest.mark.parametrize("path", ["/portal/devices", "/portal/targets/count"])
def test_attributes_nested_deeply_are_refused_on_the_portal(admin, depth, path):
    client, _ = admin
    answer = client.get(path, query_string={"attributes": "[" * depth + "]" * depth})
    assert answer.status_code == 400
    assert "nested" in answer.get_data(as_text=True)


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


def session_cookie(client) -> str:
    cookie = client.get_cookie("portal_session", path="/portal")
    assert cookie is not None
    return cookie.value


@pytest.mark.parametrize("token", [TEST_ADMIN_TOKEN, None])
def test_a_copied_cookie_stops_working_after_logout(app, token):
    token = token or create_api_token("admin", "alice")[0]
    client = app.test_client()
    csrf = sign_in(client, token)
    copy = app.test_client()
    copy.set_cookie("portal_session", session_cookie(client), path="/portal")
    assert copy.get("/portal/executions").status_code == 200
    assert client.post("/portal/logout", data={"csrf_token": csrf}).status_code == 302
    assert copy.get("/portal/executions").status_code == 302


def stored_hashes(database_url: str) -> list[bytes]:
    """Every token and session hash the database holds."""
    with psycopg.connect(database_url) as conn:
        return [bytes(value) for (value,) in conn.execute(
            "SELECT token_hash FROM api_tokens UNION ALL SELECT token_hash FROM devices "
            "UNION ALL SELECT secret_hash FROM portal_sessions") if value is not None]


def test_the_cookie_holds_nothing_the_database_stores(app, settings):
    token, _ = create_api_token("admin", "bob")
    client = app.test_client()
    sign_in(client, token)
    payload = json.dumps(app.session_interface.get_signing_serializer(app).loads(
        session_cookie(client)))
    hashes = stored_hashes(settings.database_url)
    assert len(hashes) == 2  # the token's and the session's
    for value in hashes:
        for encoded in (value.hex(), base64.urlsafe_b64encode(value).decode().rstrip("=")):
            assert encoded not in payload


def test_a_forged_cookie_from_a_database_copy_signs_no_one_in(app, settings):
    """With SECRET_KEY and every stored hash, a cookie naming a stored value is refused."""
    token, _ = create_api_token("admin", "carol")
    signer = app.session_interface.get_signing_serializer(app)
    sign_in(app.test_client(), token)
    for value in (h.hex() for h in stored_hashes(settings.database_url)):
        forger = app.test_client()
        forger.set_cookie("portal_session", signer.dumps(
            {"token_sha256": value, "session_secret": value, "csrf_token": "x"}), path="/portal")
        assert forger.get("/portal/executions").status_code == 302


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


def test_template_lifecycle_and_test_on_device(admin):
    client, csrf = admin
    device = register_fleet(1)[0]
    created = client.post("/portal/templates/new", data={
        "csrf_token": csrf, "name": "probe", "category": "maintenance",
        "job_document": '{"version": "1.0", "steps": [{"name": "Echo", "type": "runCommand",'
                        ' "input": {"command": "echo,{{WORD}}"}}]}',
        "parameters": '{"WORD": "hi"}', "is_active": "on"}, follow_redirects=True)
    page = created.get_data(as_text=True)
    assert "Template probe created." in page and "default <code>hi</code>" in page
    template_id = int(re.search(r"/portal/templates/(\d+)/edit", page).group(1))
    listing = client.get("/portal/templates?name=PRO&category=maintenance&active=yes")
    assert "probe" in listing.get_data(as_text=True)
    assert "probe" not in client.get("/portal/templates?name=zzz").get_data(as_text=True)

    off = client.post(f"/portal/templates/{template_id}/active",
                      data={"csrf_token": csrf, "is_active": "0"}, follow_redirects=True)
    assert "Template probe deactivated." in off.get_data(as_text=True)
    client.post(f"/portal/templates/{template_id}/active",
                data={"csrf_token": csrf, "is_active": "1"})

    tested = client.post(f"/portal/templates/{template_id}/test",
                         data={"csrf_token": csrf, "device_uuid": str(device.uuid)})
    assert tested.status_code == 302
    assert re.match(r".*/portal/executions/[0-9a-f-]{36}$", tested.headers["Location"])
    job = client.get(tested.headers["Location"]).get_data(as_text=True)
    assert "probe (test)" in job and "Test execution created on 1 device." in job

    deleted = client.post(f"/portal/templates/{template_id}/delete", data={"csrf_token": csrf},
                          follow_redirects=True)
    assert "Template probe deleted." in deleted.get_data(as_text=True)
    assert client.get(f"/portal/templates/{template_id}").status_code == 404


def test_execute_from_a_template_with_a_parameter_lands_on_the_execution(admin):
    client, csrf = admin
    register_fleet(2)
    client.post("/portal/templates/new", data={
        "csrf_token": csrf, "name": "say", "category": "system",
        "job_document": '{"version": "1.0", "steps": [{"name": "Say", "type": "runCommand",'
                        ' "input": {"command": "echo,{{WORD}}"}}]}',
        "parameters": '{"WORD": null}', "is_active": "on"})
    template_id = re.search(r'value="(\d+)"[^>]*>say', client.get(
        "/portal/executions/new").get_data(as_text=True)).group(1)
    form = client.get(f"/portal/executions/new?template_id={template_id}").get_data(as_text=True)
    assert 'name="param_WORD"' in form
    missing = client.post("/portal/executions/new", data={
        "csrf_token": csrf, "source": "template", "template_id": template_id,
        "target_type": "all"})
    assert missing.status_code == 400 and 'id="parameters-error"' in missing.get_data(
        as_text=True)
    bad_policy = client.post("/portal/executions/new", data={
        "csrf_token": csrf, "source": "template", "template_id": template_id,
        "param_WORD": "hi", "target_type": "all",
        "policies": '{"rollout_config": {"maximum_per_minute": -1}}'})
    assert 'id="policies-error"' in bad_policy.get_data(as_text=True)
    done = client.post("/portal/executions/new", data={
        "csrf_token": csrf, "source": "template", "template_id": template_id,
        "param_WORD": "hi", "target_type": "group", "device_type": "raspberry-pi",
        "attributes": '{"rack": "r1"}'}, follow_redirects=True)
    assert "Job created and queued for 2 device(s)." in done.get_data(as_text=True)


def test_register_a_device_shows_its_token_once(admin):
    client, csrf = admin
    answer = client.post("/portal/devices/new", data={
        "csrf_token": csrf, "device_name": "gw-1", "device_type": "gateway",
        "attributes": '{"site": "north"}'})
    page = answer.get_data(as_text=True)
    token = re.search(r'JOBS_AGENT_TOKEN=(\S+)</pre>', page).group(1)
    device_uuid = re.search(r"JOBS_AGENT_DEVICE_UUID=(\S+)", page).group(1)
    from dispatcher.fleet.tokens import authenticate

    assert authenticate(token).device_uuid == uuid.UUID(device_uuid)
    device_page = client.get(f"/portal/devices/{device_uuid}").get_data(as_text=True)
    assert token not in device_page and "north" in device_page
    listing = client.get('/portal/devices?device_type=gateway&attributes={"site":"north"}')
    assert "gw-1" in listing.get_data(as_text=True)
    bad = client.post("/portal/devices/new", data={"csrf_token": csrf, "device_name": ""})
    assert bad.status_code == 400 and 'id="device_name-error"' in bad.get_data(as_text=True)


def test_device_jobs_tab_puts_the_current_job_on_top(admin):
    client, _ = admin
    device = register_fleet(1)[0]
    finished = insert_job([device], job_name="older-finished")
    set_row_status(finished, device, "FAILED")
    insert_job([device], job_name="running-now")
    older = insert_job([device], job_name="newest-finished")
    set_row_status(older, device, "SUCCEEDED")
    page = client.get(f"/portal/devices/{device.uuid}").get_data(as_text=True)
    assert page.index("running-now") < page.index("newest-finished") < page.index(
        "older-finished")
    assert page.count('class="small retry-device"') == 1  # Retry on the FAILED one


def test_handlers_create_and_edit_show_the_sha256(admin):
    import hashlib

    client, csrf = admin
    script = "#!/bin/sh\necho hi\n"
    created = client.post("/portal/handlers/new", data={
        "csrf_token": csrf, "name": "hello.sh", "script_type": "bash",
        "script_content": script, "permissions": "700", "default_args": ""},
        follow_redirects=True)
    sha = hashlib.sha256(script.encode()).hexdigest()
    assert sha in created.get_data(as_text=True)
    assert sha in client.get("/portal/handlers").get_data(as_text=True)
    edited = client.post("/portal/handlers/hello.sh", data={
        "csrf_token": csrf, "script_type": "bash", "script_content": "echo bye\n",
        "permissions": "755", "default_args": "--loud"}, follow_redirects=True)
    assert "Handler saved:" in edited.get_data(as_text=True)
    bad = client.post("/portal/handlers/new", data={
        "csrf_token": csrf, "name": "../x", "script_type": "bash", "script_content": "x"})
    assert bad.status_code == 400 and 'id="name-error"' in bad.get_data(as_text=True)


def test_an_unexpected_error_is_a_500_page(admin, app, monkeypatch):
    from dispatcher.jobs import progress

    def broken(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(progress, "executions_overview", broken)
    client, _ = admin
    answer = client.get("/portal/executions")
    assert answer.status_code == 500 and answer.mimetype == "text/html"
    assert "boom" not in answer.get_data(as_text=True)


def test_execution_devices_are_searched_by_name_and_filtered_by_status(admin):
    client, _ = admin
    fleet = register_fleet(3, prefix="north") + register_fleet(2, prefix="south")
    job_id = insert_job(fleet)
    set_row_status(job_id, fleet[0], "FAILED")
    page = client.get(f"/portal/executions/{job_id}?device=NORTH").get_data(as_text=True)
    assert page.count('class="view-output"') == 3 and "south-000" not in page
    failed = client.get(f"/portal/executions/{job_id}?device=north&status=FAILED")
    assert failed.get_data(as_text=True).count('class="view-output"') == 1
    assert "FAILED (1)" in failed.get_data(as_text=True)
    none = client.get(f"/portal/executions/{job_id}?device=west").get_data(as_text=True)
    assert "No devices named like “west”." in none


def test_a_recurring_execution_shows_its_runs(admin):
    client, csrf = admin
    register_fleet(1)
    answer = client.post("/portal/executions/new", data={
        "csrf_token": csrf, "source": "custom", "job_name": "nightly",
        "job_document": '{"version": "1.0", "steps": [{"name": "a", "type": "runCommand",'
                        ' "input": {"command": "true"}}]}',
        "target_type": "all",
        "policies": '{"execution_type": "recurring", "schedule": {"cron": "0 3 * * *"}}'},
        follow_redirects=True)
    page = answer.get_data(as_text=True)
    assert "<h2>Runs</h2>" in page and "No run has fired yet; the next is" in page


def test_device_attributes_are_escaped_text(admin):

    from dispatcher.fleet.devices import register_device

    client, _ = admin
    device, _ = quietly(register_device("plain", "pi", {"note": "<script>alert(3)</script>"}))
    for path in (f"/portal/devices/{device['uuid']}", "/portal/devices"):
        page = client.get(path).get_data(as_text=True)
        assert "&#34;&lt;script&gt;alert(3)&lt;/script&gt;&#34;" in page, path
        assert "<script>alert(3)" not in page, path
