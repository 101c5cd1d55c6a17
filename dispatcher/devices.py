"""Devices: registration, attributes and their bearer tokens."""

from __future__ import annotations

import uuid as uuid_mod

from dispatcher import audit, db, tokens


def register_device(
    device_name: str,
    device_type: str = "generic",
    attributes: dict | None = None,
    device_uuid: uuid_mod.UUID | None = None,
    actor: str = "system",
) -> tuple[dict, str]:
    """Register a device; return its record and its bearer token (shown only this once)."""
    token = tokens.new_token()
    with db.transaction() as c:
        device = c.one(
            "insert_device",
            uuid=device_uuid or uuid_mod.uuid4(),
            device_name=device_name,
            device_type=device_type,
            attributes=db.jsonb(attributes or {}),
            token_hash=tokens.hash_token(token),
        )
        assert device is not None
        audit.record_event(
            c, actor, "device.created", "device", device["uuid"], device_uuid=device["uuid"],
            details={"device_name": device_name, "device_type": device_type},
        )
    return device, token
