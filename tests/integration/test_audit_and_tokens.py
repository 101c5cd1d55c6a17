"""Tokens authenticate the right principal; device registration leaves an audit row."""

from __future__ import annotations

from dispatcher import audit, tokens
from dispatcher.devices import register_device


def test_device_token_authenticates_only_its_device(app):
    device, token = register_device("pi-1", "raspberry-pi", {"environment": "production"})
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
    device, _ = register_device("pi-2")
    trail = audit.list_target_events("device", device["uuid"], limit=10, offset=0)
    assert trail["total"] == 1
    assert trail["events"][0]["action"] == "device.created"
