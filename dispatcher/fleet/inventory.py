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
from dispatcher.errors import InvalidInput, NotFound
from dispatcher.outcome import Decided, Outcome
from dispatcher.policies import continuous
from schemas.inventory import MAX_INVENTORY_LEAVES, MERGE, count_leaves

log = logging.getLogger(__name__)


def report_inventory(device_uuid: uuid.UUID, data: dict, mode: str,
                     now: datetime) -> Decided[dict]:
    """Store a device's report; answer ``{inventory, inventory_updated_at, changed}``."""
    with db.transaction() as c:
        current = c.one("lock_device_inventory", uuid=device_uuid)
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
        stored = c.row("store_device_inventory", uuid=device_uuid, now=now, changed=changed,
                       inventory=db.jsonb(inventory))
        # Most fleets run no continuous job most of the time: then a change needs no reconcile.
        follow = changed and bool(c.all("active_continuous_jobs", job_id=None, now=now))
    outcome = Outcome()
    if changed:
        log.info("inventory changed device_uuid=%s keys=%d mode=%s", device_uuid, leaves, mode)
    if follow:
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
