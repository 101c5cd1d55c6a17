"""Registering devices in bulk: a whole fleet in one statement, for imports, demos and load.

Unlike ``dispatcher.devices.register_device`` no token is returned: each device gets a random
one nobody holds, to be replaced by a token rotation when a real device is set up. The batch
is one audit event, not one per device.
"""

from __future__ import annotations

from dispatcher import audit, db


def bulk_register_devices(
    count: int,
    device_type: str = "generic",
    attributes: dict | None = None,
    name_prefix: str = "device",
    actor: str = "system",
) -> int:
    """Register ``count`` devices named ``<name_prefix>-1…``; return how many were added."""
    with db.transaction() as c:
        added = c.execute(
            "bulk_insert_devices", count=count, device_type=device_type,
            attributes=db.jsonb(attributes or {}), name_prefix=name_prefix,
        )
        audit.record_event(
            c, actor, "devices.bulk_registered", "device", name_prefix,
            details={"count": added, "device_type": device_type, "attributes": attributes or {}},
        )
    return added
