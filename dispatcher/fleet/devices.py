"""Devices: registration, attributes, and their bearer tokens.

A device token is shown once, when it is made (registration or rotation); only its SHA-256 is
stored, and neither the token nor its hash ever reaches a log or the audit trail.
"""

from __future__ import annotations

import uuid as uuid_mod
from datetime import UTC, datetime

from dispatcher import audit, db
from dispatcher.changes import field_changes
from dispatcher.errors import NotFound
from dispatcher.fleet import tokens
from dispatcher.fleet.filters import (
    bounded_search,
    compile_filter,
    devices_in_range,
    number_range,
    parse_target_filter,
)
from dispatcher.jobs.targeting import Target, count_target_devices
from dispatcher.outcome import Decided, Outcome
from dispatcher.policies import continuous
from schemas.vocabulary import TARGET_GROUP

EDITABLE_FIELDS = ("device_name", "device_type", "attributes")


def register_device(
    device_name: str,
    device_type: str = "generic",
    attributes: dict | None = None,
    device_uuid: uuid_mod.UUID | None = None,
    actor: str = "system",
) -> Decided[tuple[dict, str]]:
    """Register a device; answer its record and its bearer token (shown only this once).

    The device joins the continuous jobs it matches at once; the outcome nudges it about them."""
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
    return Decided((device, token), _follow_continuous_jobs(device["uuid"]))


def get_device(device_uuid: uuid_mod.UUID) -> dict:
    device = db.one("get_device", uuid=device_uuid)
    if device is None:
        raise NotFound(f"Device {device_uuid} not found")
    return device


def list_devices(target_filter: dict, limit: int, offset: int,
                 timeout_ms: int | None = None) -> dict:
    """A page of the devices a filter matches, by uuid, with their number: ``{devices,
    total, limit, offset}``.

    The search is bounded (``bounded_search``): a filter that no index serves and that would
    read past the time limit is refused, saying so, instead of holding a connection."""
    tree = parse_target_filter(target_filter, "filter")
    numbers = number_range(tree)
    slots = {"device_filter": compile_filter(tree, "device") if numbers is None
             else devices_in_range(numbers)}
    with db.transaction() as c, bounded_search(c, timeout_ms):
        rows = c.all_filtered("list_devices", slots, limit=limit, offset=offset)
        if 0 < len(rows) < limit or (not rows and not offset):
            total = offset + len(rows)
        else:
            total = count_target_devices(
                Target(TARGET_GROUP, target_filter=target_filter, tree=tree), c)
    return {"devices": rows, "total": total, "limit": limit, "offset": offset}


def _follow_continuous_jobs(device_uuid: uuid_mod.UUID) -> Outcome:
    """A device was registered or changed: it joins or leaves continuous jobs now; the outcome
    nudges it about what it joined or left, and a job it left may be complete."""
    return continuous.reconcile_continuous(datetime.now(UTC), device_uuid=device_uuid)


def update_device(
    device_uuid: uuid_mod.UUID, changes: dict, actor: str
) -> Decided[tuple[dict, dict[str, dict]]]:
    """Apply ``changes`` (device_name, device_type, attributes); answer the device and the diff.

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
            return Decided((current, diff))
        device = c.row(
            "update_device", uuid=device_uuid, device_name=wanted["device_name"],
            device_type=wanted["device_type"], attributes=db.jsonb(wanted["attributes"]),
        )
        audit.record_event(
            c, actor, "device.updated", "device", device_uuid, device_uuid=device_uuid,
            details={"changed": diff},
        )
    return Decided((device, diff), _follow_continuous_jobs(device_uuid))


def delete_device(device_uuid: uuid_mod.UUID, actor: str) -> Decided[tuple[dict, int]]:
    """Delete a device and its job status rows; answer the device as it was and that row count.

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
    return Decided((device, removed), Outcome(may_have_completed=set(pending_jobs),
                                              broker_revocations={device_uuid}))


def rotate_device_token(device_uuid: uuid_mod.UUID, actor: str) -> Decided[str]:
    """Give a device a new token (returned, shown once); the old one stops working at once, and
    so does its MQTT login, derived from the token (the agent asks for the new one when the
    broker refuses the old)."""
    token = tokens.new_token()
    token_hash = tokens.hash_token(token)
    with db.transaction() as c:
        if c.one("set_device_token", uuid=device_uuid, token_hash=token_hash) is None:
            raise NotFound(f"Device {device_uuid} not found")
        audit.record_event(
            c, actor, "device.token_rotated", "device", device_uuid, device_uuid=device_uuid,
        )
    return Decided(token, Outcome(broker_grants={device_uuid: token_hash}))
