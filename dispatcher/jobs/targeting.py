"""Which devices a job targets: one device list, a group filter, or the whole fleet.

A group filter such as ``{"device_type": "raspberry-pi", "environment": "production"}`` matches
``device_type`` against the column and every other key by JSON containment on ``attributes``
(``dispatcher.fleet.filters.device_filter_params``, the same rule the device list uses).

Counting is cheap whatever the fleet size: triggers keep ``device_signatures``, the number of
devices per distinct (device_type, attributes), exact, and any target is counted by summing the
signatures that match it (GIN containment on their attributes). The cost grows with the number
of matching signatures, not devices; only a fleet whose devices each carry a unique attribute
has as many signatures as devices. A device list is checked against the primary key.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from dispatcher import db
from dispatcher.errors import InvalidInput
from dispatcher.fleet.filters import DEVICE_TYPE_KEY, device_filter_params
from schemas.vocabulary import TARGET_ALL, TARGET_DEVICE, TARGET_GROUP, TARGET_TYPES


@dataclass(frozen=True)
class Target:
    target_type: str
    device_uuids: tuple[uuid.UUID, ...] | None = None
    device_type: str | None = None
    attributes: dict | None = None

    @property
    def target_filter(self) -> dict | None:
        """The group filter as the API takes and shows it."""
        if self.target_type != TARGET_GROUP:
            return None
        shown = dict(self.attributes or {})
        if self.device_type is not None:
            shown[DEVICE_TYPE_KEY] = self.device_type
        return shown

    def page_filter(self) -> dict:
        """Parameters of the fan-out page query; None means no such condition."""
        return {
            "device_uuids": list(self.device_uuids) if self.device_uuids is not None else None,
            "device_type": self.device_type,
            "attributes": db.jsonb(self.attributes) if self.attributes else None,
        }


def parse_target(
    target_type: str,
    target_devices: list[uuid.UUID] | None = None,
    target_filter: dict | None = None,
) -> Target:
    """A Target from the execute request's fields; InvalidInput when they do not fit together."""
    if target_type == TARGET_DEVICE:
        if target_filter:
            raise _misplaced("target_filter", "group")
        if not target_devices:
            raise InvalidInput("target_devices must list at least one device",
                               errors={"target_devices": ["Must list at least one device."]})
        return Target(TARGET_DEVICE, device_uuids=tuple(dict.fromkeys(target_devices)))
    if target_type == TARGET_GROUP:
        if target_devices:
            raise _misplaced("target_devices", "device")
        return _group_target(target_filter)
    if target_type == TARGET_ALL:
        if target_devices:
            raise _misplaced("target_devices", "device")
        if target_filter:
            raise _misplaced("target_filter", "group")
        return Target(TARGET_ALL)
    raise InvalidInput(f"Unknown target_type {target_type!r}",
                       errors={"target_type": [f"Must be one of: {', '.join(TARGET_TYPES)}."]})


def _misplaced(field: str, owner: str) -> InvalidInput:
    return InvalidInput(f"{field} applies only to target_type {owner}",
                        errors={field: [f"Only allowed with target_type {owner}."]})


def _group_target(target_filter: dict | None) -> Target:
    if not target_filter:
        raise InvalidInput(
            "target_filter must name at least one key (use target_type all for every device)",
            errors={"target_filter": ["Must be an object with at least one key."]},
        )
    params = device_filter_params(target_filter, "target_filter")
    return Target(TARGET_GROUP, device_type=params["device_type"],
                  attributes=params["attributes"].obj or None)


def target_of_execution(execution: dict) -> Target:
    """The Target stored on a job_executions row."""
    target_type = execution["target_type"]
    if target_type == TARGET_DEVICE:
        return Target(TARGET_DEVICE, device_uuids=tuple(execution["target_devices"] or ()))
    if target_type == TARGET_GROUP:
        return _group_target(execution["target_filter"])
    return Target(TARGET_ALL)


def count_target_devices(target: Target, conn: db.Connector | None = None) -> int:
    """How many registered devices ``target`` reaches now (on ``conn``, else a connection of its
    own: a live "N devices match").

    A device list naming unregistered devices is refused with InvalidInput naming each one.
    """
    if conn is None:
        with db.connect() as own:
            return count_target_devices(target, own)
    if target.target_type == TARGET_DEVICE:
        device_uuids = list(target.device_uuids or ())
        unknown = [row["uuid"] for row in conn.all("unknown_devices", device_uuids=device_uuids)]
        if unknown:
            names = ", ".join(str(u) for u in unknown)
            raise InvalidInput(
                f"Unknown device(s): {names}",
                errors={"target_devices": [f"Unknown device: {u}" for u in unknown]},
                unknown_devices=[str(u) for u in unknown],
            )
        return len(device_uuids)
    return conn.row_unprepared("count_matching_devices", device_type=target.device_type,
                               attributes=db.jsonb(target.attributes))["n"]
