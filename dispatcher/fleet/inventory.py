"""Device inventory: the facts a device reports about itself, kept apart from the operator's
attributes.

A report replaces the inventory or merges into it (deep; a null removes a key). Whatever it
says is the device's word: it lands only in ``devices.inventory``, never in the attributes,
type or groups an operator set. A report is a sighting (``last_seen_at``); one that changes
the inventory moves the device in or out of the continuous jobs whose filters name it.
"""

from __future__ import annotations

import logging
import uuid
from datetime import datetime
from typing import Any

from dispatcher import db
from dispatcher.errors import Conflict, InvalidInput, NotFound
from dispatcher.outcome import Decided, Outcome
from dispatcher.policies import continuous
from schemas.inventory import MAX_INVENTORY_LEAVES, MERGE, count_leaves

log = logging.getLogger(__name__)

# How many times a report is merged again when another report of the device came first.
STORE_ATTEMPTS = 5


def report_inventory(device_uuid: uuid.UUID, data: dict, mode: str,
                     now: datetime) -> Decided[dict]:
    """Store a device's report; answer ``{inventory, inventory_updated_at, changed}``.

    Two statements, neither holding a lock across a round trip: the inventory is read, the
    report merged into it here, and the result stored only if the inventory is still the one
    read (a report that raced another is merged again)."""
    for _ in range(STORE_ATTEMPTS):
        current = db.one("device_inventory", uuid=device_uuid)
        if current is None:
            raise NotFound(f"Device {device_uuid} not found")
        inventory = merged(current["inventory"], data) if mode == MERGE else without_nulls(data)
        leaves = count_leaves(inventory)
        if leaves > MAX_INVENTORY_LEAVES:
            raise InvalidInput(
                f"The inventory would hold {leaves} keys; at most {MAX_INVENTORY_LEAVES}.",
                errors={"data": [f"At most {MAX_INVENTORY_LEAVES} keys (nested keys count "
                                 "one each)."]})
        changed = inventory != current["inventory"]
        stored = db.one("store_device_inventory", uuid=device_uuid, now=now, changed=changed,
                        inventory=db.jsonb(inventory), read=db.jsonb(current["inventory"]))
        if stored is not None:
            break
    else:
        raise Conflict("The device's inventory kept changing while this report was applied; "
                       "send it again.")
    outcome = Outcome()
    if changed:
        log.info("inventory changed device_uuid=%s keys=%d mode=%s", device_uuid, leaves, mode)
    # Most fleets run no continuous job most of the time: then a change needs no reconcile.
    if stored.pop("follow"):
        outcome = continuous.reconcile_continuous(now, device_uuid=device_uuid)
    return Decided({**stored, "changed": changed}, outcome)


def merged(current: dict, changes: dict) -> dict:
    """``current`` with ``changes`` merged in, object by object; a null removes a key."""
    result = dict(current)
    for key, value in changes.items():
        if value is None:
            result.pop(key, None)
        elif isinstance(value, dict) and isinstance(result.get(key), dict):
            result[key] = merged(result[key], value)
        else:
            result[key] = without_nulls(value)
    return result


def without_nulls(value: Any) -> Any:
    """A value with the null members of its objects left out (null means "no such key")."""
    if isinstance(value, dict):
        return {k: without_nulls(v) for k, v in value.items() if v is not None}
    return value
