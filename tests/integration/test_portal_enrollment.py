"""The portal's enrollment page: pending devices accepted or rejected, enrollment tokens made
(shown once with the device's commands) and revoked; viewers see and change nothing."""

from __future__ import annotations

import re

from suite_constants import TEST_ADMIN_TOKEN
from test_portal import csrf_of, sign_in

from dispatcher.fleet import enrollment, tokens


def pending_device(name: str, hardware: str) -> dict:
    token, _ = enrollment.create_enrollment_token("lab", None, None, "raspberry-pi", {}, True,
                                                  "admin:test")
    return enrollment.enroll_device(token, hardware, name).answer[1]


def test_admins_accept_and_reject_pending_devices(client):
    csrf = sign_in(client, TEST_ADMIN_TOKEN)
    kept, refused = pending_device("pi-kept", "h" * 16), pending_device("pi-refused", "r" * 16)
    devices_page = client.get("/portal/devices").get_data(as_text=True)
    assert "Enrollment (2 pending)" in devices_page
    page = client.get("/portal/devices/pending").get_data(as_text=True)
    assert "pi-kept" in page and "pi-refused" in page

    answer = client.post(f"/portal/devices/pending/{kept['uuid']}/accept",
                         data={"csrf_token": csrf}, follow_redirects=True)
    assert "Accepted pi-kept" in answer.get_data(as_text=True)
    answer = client.post(f"/portal/devices/pending/{refused['uuid']}/reject",
                         data={"csrf_token": csrf}, follow_redirects=True)
    page = answer.get_data(as_text=True)
    assert "Rejected pi-refused" in page and "No device is waiting." in page
    assert client.get(f"/portal/devices/{kept['uuid']}").status_code == 200
    assert client.get(f"/portal/devices/{refused['uuid']}").status_code == 404
    assert client.post(f"/portal/devices/pending/{kept['uuid']}/accept",
                       data={"csrf_token": csrf}).status_code == 404


def test_admins_make_a_token_shown_once_with_the_device_commands_and_revoke_it(client):
    csrf = sign_in(client, TEST_ADMIN_TOKEN)
    bad = client.post("/portal/enrollment-tokens", data={
        "csrf_token": csrf, "name": "kitchen", "max_uses": "none"})
    assert bad.status_code == 400 and "Not a valid integer." in bad.get_data(as_text=True)
    made = client.post("/portal/enrollment-tokens", data={
        "csrf_token": csrf, "name": "kitchen", "device_type": "raspberry-pi", "max_uses": "3",
        "requires_acceptance": "on"}).get_data(as_text=True)
    token = re.search(r'id="enrollment-token" readonly value="([^"]+)"', made).group(1)
    assert f"jobs-agent enroll --server http://localhost --enrollment-token {token}" in made
    assert "/agent/jobs-agent.deb" in made
    [record] = enrollment.list_enrollment_tokens(10, 0)["enrollment_tokens"]
    assert (record["max_uses"], record["requires_acceptance"]) == (3, True)
    assert tokens.hash_token(token) not in made.encode()
    page = client.get("/portal/devices/pending").get_data(as_text=True)
    assert "0 of 3" in page
    answer = client.post(f"/portal/enrollment-tokens/{record['id']}/revoke",
                         data={"csrf_token": csrf}, follow_redirects=True)
    assert "Revoked kitchen" in answer.get_data(as_text=True)


def test_viewers_see_pending_devices_but_cannot_decide(app):
    viewer_token, _ = tokens.create_api_token("viewer", "portal viewer")
    client = app.test_client()
    csrf = sign_in(client, viewer_token)
    device = pending_device("pi-waiting", "v" * 16)
    page = client.get("/portal/devices/pending").get_data(as_text=True)
    assert "pi-waiting" in page and "accept-device" not in page and "Make token" not in page
    assert csrf_of(page)
    refused = client.post(f"/portal/devices/pending/{device['uuid']}/accept",
                          data={"csrf_token": csrf})
    assert refused.status_code == 403
