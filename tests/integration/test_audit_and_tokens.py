"""Tokens authenticate the right principal; device registration leaves an audit row."""

from __future__ import annotations

from job_rows import quietly

from dispatcher import db
from dispatcher.fleet import tokens
from dispatcher.fleet.devices import register_device


def test_device_token_authenticates_only_its_device(app):
    device, token = quietly(register_device("pi-1", "raspberry-pi", {"environment": "production"}))
    principal = tokens.authenticate(token)
    assert principal is not None
    assert principal.kind == "device"
    assert principal.device_uuid == device["uuid"]
    assert tokens.authenticate("not-a-token") is None


def test_revoked_viewer_token_no_longer_authenticates(app):
    token, record = tokens.create_api_token("viewer", "ops dashboard")
    assert tokens.authenticate(token).kind == "viewer"
    tokens.revoke_api_token(record["id"])
    assert tokens.authenticate(token) is None


def test_device_registration_is_audited(app):
    device, _ = quietly(register_device("pi-2"))
    with db.pool().connection() as conn:
        trail = conn.execute("SELECT action, actor FROM job_events"
                             " WHERE target_type = 'device' AND target_id = %s",
                             (str(device["uuid"]),)).fetchall()
    assert trail == [{"action": "device.created", "actor": "system"}]


def test_a_token_in_use_has_its_last_use_written_at_most_once_a_minute(client):
    from dispatcher import db
    from dispatcher.fleet.tokens import create_api_token, list_api_tokens

    token, record = create_api_token("viewer", "grafana")
    assert record["last_used_at"] is None
    headers = {"Authorization": f"Bearer {token}"}
    assert client.get("/api/v1/devices", headers=headers).status_code == 200
    first = next(t for t in list_api_tokens() if t["id"] == record["id"])["last_used_at"]
    assert first is not None
    with db.pool().connection() as conn:
        conn.execute("SELECT pg_sleep(0.05)")
    assert client.get("/api/v1/devices", headers=headers).status_code == 200
    assert next(t for t in list_api_tokens() if t["id"] == record["id"])["last_used_at"] == first
