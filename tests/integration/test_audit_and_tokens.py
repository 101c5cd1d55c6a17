"""Tokens authenticate the right principal; device registration leaves an audit row."""

from __future__ import annotations

from job_rows import QUIET_SETTINGS

from dispatcher import db, tokens
from dispatcher.devices import register_device


def test_device_token_authenticates_only_its_device(app):
    device, token = register_device("pi-1", "raspberry-pi", {"environment": "production"},
                                    settings=QUIET_SETTINGS)
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
    device, _ = register_device("pi-2", settings=QUIET_SETTINGS)
    with db.pool().connection() as conn:
        trail = conn.execute("SELECT action, actor FROM job_events"
                             " WHERE target_type = 'device' AND target_id = %s",
                             (str(device["uuid"]),)).fetchall()
    assert trail == [{"action": "device.created", "actor": "system"}]
