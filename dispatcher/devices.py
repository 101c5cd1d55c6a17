"""Devices: registration, attributes, group filters and their bearer tokens.

A device token is shown once, when it is made (registration or rotation); only its SHA-256 is
stored, and neither the token nor its hash ever reaches a log or the audit trail.
"""

from __future__ import annotations

import uuid as uuid_mod
from datetime import UTC, datetime
from typing import Any

from dispatcher import audit, db, tokens
from dispatcher.changes import field_changes
from dispatcher.config import Settings
from dispatcher.errors import InvalidInput, NotFound
from dispatcher.jobs.outcome import Outcome, carry_out
from dispatcher.policies import continuous

DEVICE_TYPE_KEY = "device_type"
EDITABLE_FIELDS = ("device_name", "device_type", "attributes")


def register_device(
    device_name: str,
    device_type: str = "generic",
    attributes: dict | None = None,
    device_uuid: uuid_mod.UUID | None = None,
    actor: str = "system",
    *,
    settings: Settings,
) -> tuple[dict, str]:
    """Register a device; return its record and its bearer token (shown only this once).

    The device joins the continuous jobs it matches at once (and is nudged about them)."""
    token = tokens.new_token()
    with db.transaction() as c:
        device = c.row(
            "insert_device",
            uuid=device_uuid or uuid_mod.uuid4(),
            device_name=device_name,
            device_type=device_type,
            attributes=db.jsonb(attributes or {}),
            token_hash=tokens.hash_token(token),
        )
        audit.record_event(
            c, actor, "device.created", "device", device["uuid"], device_uuid=device["uuid"],
            details={"device_name": device_name, "device_type": device_type},
        )
    _follow_continuous_jobs(device["uuid"], settings)
    return device, token


def device_filter_params(target_filter: dict, field: str = "filter") -> dict[str, Any]:
    """Query parameters ``device_type`` and ``attributes`` for a group filter.

    A filter such as ``{"device_type": "raspberry-pi", "environment": "production"}`` matches
    devices whose ``device_type`` column equals the ``device_type`` key (any type when the key is
    absent) and whose attributes contain every other key (``attributes @> rest``, served by the
    GIN index). Use in SQL as
    ``(%(device_type)s::text IS NULL OR device_type = %(device_type)s)
    AND attributes @> %(attributes)s``. ``field`` names the request field in errors.
    """
    if not isinstance(target_filter, dict):
        raise InvalidInput(f"{field} must be a JSON object", errors={field: ["Must be an object."]})
    attributes = dict(target_filter)
    device_type = attributes.pop(DEVICE_TYPE_KEY, None)
    if device_type is not None and not isinstance(device_type, str):
        raise InvalidInput(
            f"{field}.device_type must be a string",
            errors={field: {DEVICE_TYPE_KEY: ["Must be a string."]}},
        )
    return {"device_type": device_type, "attributes": db.jsonb(attributes)}


def get_device(device_uuid: uuid_mod.UUID) -> dict:
    device = db.one("get_device", uuid=device_uuid)
    if device is None:
        raise NotFound(f"Device {device_uuid} not found")
    return device


def list_devices(target_filter: dict, limit: int, offset: int) -> dict:
    """A page of the devices a group filter matches (see ``device_filter_params``)."""
    return db.page(
        "list_devices", "devices", "count_devices", limit=limit, offset=offset,
        **device_filter_params(target_filter),
    )


def _follow_continuous_jobs(device_uuid: uuid_mod.UUID, settings: Settings) -> None:
    """A device was registered or changed: it joins or leaves continuous jobs now, is nudged
    about what it joined or left, and a job it left may be complete."""
    carry_out(continuous.reconcile_continuous(datetime.now(UTC), device_uuid=device_uuid),
              settings)


def update_device(
    device_uuid: uuid_mod.UUID, changes: dict, actor: str, settings: Settings
) -> tuple[dict, dict[str, dict]]:
    """Apply ``changes`` (device_name, device_type, attributes); return the device and the diff.

    ``attributes`` is merged key by key into the current attributes, and a key set to null is
    removed, so an operator can change one attribute without resending the others. The diff
    maps each field that really changed to ``{"from": old, "to": new}``; nothing is written or
    audited when nothing changed.
    """
    with db.transaction() as c:
        current = c.one("lock_device", uuid=device_uuid)
        if current is None:
            raise NotFound(f"Device {device_uuid} not found")
        wanted = {name: current[name] for name in EDITABLE_FIELDS}
        for name in ("device_name", "device_type"):
            if name in changes:
                wanted[name] = changes[name]
        if "attributes" in changes:
            merged = {**current["attributes"], **changes["attributes"]}
            wanted["attributes"] = {k: v for k, v in merged.items() if v is not None}
        diff = field_changes(current, wanted, EDITABLE_FIELDS)
        if not diff:
            return current, diff
        device = c.row(
            "update_device", uuid=device_uuid, device_name=wanted["device_name"],
            device_type=wanted["device_type"], attributes=db.jsonb(wanted["attributes"]),
        )
        audit.record_event(
            c, actor, "device.updated", "device", device_uuid, device_uuid=device_uuid,
            details={"changed": diff},
        )
    _follow_continuous_jobs(device_uuid, settings)
    return device, diff


def delete_device(
    device_uuid: uuid_mod.UUID, actor: str, settings: Settings
) -> tuple[dict, int]:
    """Delete a device and its job status rows; return the device as it was and that row count.

    A job the device was still pending in is completed if nothing else is pending: otherwise a
    job whose last waiting device was deleted would stay open for ever.
    """
    with db.transaction() as c:
        device = c.one("lock_device", uuid=device_uuid)
        if device is None:
            raise NotFound(f"Device {device_uuid} not found")
        removed = c.row("count_device_job_statuses", uuid=device_uuid)["n"]
        pending_jobs = [row["job_id"] for row in c.all("device_pending_jobs", uuid=device_uuid)]
        c.execute("delete_device", uuid=device_uuid)
        audit.record_event(
            c, actor, "device.deleted", "device", device_uuid, device_uuid=device_uuid,
            details={"device_name": device["device_name"], "device_type": device["device_type"],
                     "attributes": device["attributes"], "removed_job_statuses": removed,
                     "pending_jobs": [str(job_id) for job_id in pending_jobs]},
        )
    carry_out(Outcome(may_have_completed=set(pending_jobs)), settings)
    return device, removed


def rotate_device_token(device_uuid: uuid_mod.UUID, actor: str) -> str:
    """Give a device a new token (returned, shown once); the old one stops working at once."""
    token = tokens.new_token()
    with db.transaction() as c:
        if c.one("set_device_token", uuid=device_uuid, token_hash=tokens.hash_token(token)) is None:
            raise NotFound(f"Device {device_uuid} not found")
        audit.record_event(
            c, actor, "device.token_rotated", "device", device_uuid, device_uuid=device_uuid,
        )
    return token


def count_fleet(now: datetime, online_within_s: int) -> Outcome:
    """Count the fleet into ``fleet_counts``: the devices, and those seen within
    ``online_within_s`` of ``now``. A periodic sweep: one scan of the devices every
    ``FLEET_COUNT_INTERVAL_S``, so that no page scans them."""
    _count_fleet(now, online_within_s)
    return Outcome()


def fleet_overview(settings: Settings) -> dict:
    """The fleet numbers as last counted (``total``, ``online``, ``counted_at``).

    Counted here instead when they never were, were counted with another online window, or
    are older than two sweep intervals (beat is not running): so a view scans the fleet only
    when the sweep cannot have, and then at most once per two intervals.
    """
    within_s = settings.device_online_within_s
    counts = db.one("fleet_counts")
    now = datetime.now(UTC)
    if (counts is None or counts["online_within_s"] != within_s
            or (now - counts["counted_at"]).total_seconds() > 2 * settings.fleet_count_interval_s):
        counts = _count_fleet(now, within_s)
    return counts


def _count_fleet(now: datetime, online_within_s: int) -> dict:
    return db.row("count_fleet", now=now, online_within_s=online_within_s)
