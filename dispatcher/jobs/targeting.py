"""Which devices a job targets: one device list, a group filter, or the whole fleet.

A group filter is written in the filter language (``schemas.filters``) and compiled to SQL by
``dispatcher.fleet.filters``, the same rule the device list, search, stages and continuous
jobs use. ``{"device_type": "raspberry-pi", "environment": "production"}`` keeps its old
meaning: the device type column and JSON containment on the attributes.

Counting is cheap whatever the fleet size for a filter on the device type and attributes
alone: triggers keep ``device_signatures``, the number of devices per distinct (device_type,
attributes), exact, and such a target is counted by summing the signatures that match it. The
cost grows with the number of matching signatures, not devices. A filter that also names
summarised inventory facts (os, kernel, model, …: ``fact_signature_paths()`` in the database)
is counted from the fact signatures: the filter is evaluated on the distinct (type,
attributes, summarised facts), and the devices of the matching ones are counted by an
index-only scan of a narrow table that sightings never write. A range of one numeric
inventory fact (``"inventory.disk_free_mb": {"$gte": 500}``) is counted by an index-only scan
of ``device_inventory_numbers``, where triggers keep every number of every inventory. A filter
that names other inventory or server columns is counted on the devices themselves (the GIN
indexes serve its exact matches). A device list is checked against the primary key.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from dispatcher import db
from dispatcher.errors import InvalidInput, NotFound
from dispatcher.fleet.filters import (
    EVERY_DEVICE,
    Predicate,
    bounded_search,
    compile_filter,
    counts_from_fact_signatures,
    counts_from_signatures,
    number_range,
    parse_target_filter,
    static_group_members,
    uses_inventory,
)
from schemas.filters import AllOf
from schemas.vocabulary import TARGET_ALL, TARGET_DEVICE, TARGET_GROUP, TARGET_TYPES


@dataclass(frozen=True)
class Target:
    target_type: str
    device_uuids: tuple[uuid.UUID, ...] | None = None
    target_filter: dict | None = None
    tree: AllOf | None = None
    # A named group: its filter (tree) as read when the target was made, or, for a static
    # group, its member list.
    group: str | None = None
    static_group: bool = False

    def predicate(self, name: str = "target", now: datetime | None = None) -> Predicate:
        """The SQL condition on a devices row ``d`` that the target puts (true for a device
        list or the whole fleet)."""
        if self.static_group and self.group is not None:
            return static_group_members(self.group, name)
        if self.tree is None:
            return EVERY_DEVICE
        return compile_filter(self.tree, name, "d", now)

    def page_filter(self, now: datetime | None = None) -> dict[str, Any]:
        """Parameters of a fan-out page query: the device list (None: any device) and the
        target's predicate for its ``{{target_filter}}`` slot."""
        return {
            "device_uuids": list(self.device_uuids) if self.device_uuids is not None else None,
            "slots": {"target_filter": self.predicate("target", now)},
        }

    @property
    def names_inventory(self) -> bool:
        return self.tree is not None and uses_inventory(self.tree)


def parse_target(
    target_type: str,
    target_devices: list[uuid.UUID] | None = None,
    target_filter: dict | None = None,
    group: str | None = None,
) -> Target:
    """A Target from the execute request's fields; InvalidInput when they do not fit together,
    NotFound for an unknown group."""
    if target_type == TARGET_DEVICE:
        if target_filter:
            raise _misplaced("target_filter", "group")
        if group:
            raise _misplaced("group", "group")
        if not target_devices:
            raise InvalidInput("target_devices must list at least one device",
                               errors={"target_devices": ["Must list at least one device."]})
        return Target(TARGET_DEVICE, device_uuids=tuple(dict.fromkeys(target_devices)))
    if target_type == TARGET_GROUP:
        if target_devices:
            raise _misplaced("target_devices", "device")
        if group is not None:
            if target_filter:
                raise InvalidInput("Give either group or target_filter, not both",
                                   errors={"group": ["Not with target_filter."]})
            return named_group_target(group)
        return _group_target(target_filter)
    if target_type == TARGET_ALL:
        if target_devices:
            raise _misplaced("target_devices", "device")
        if target_filter:
            raise _misplaced("target_filter", "group")
        if group:
            raise _misplaced("group", "group")
        return Target(TARGET_ALL)
    raise InvalidInput(f"Unknown target_type {target_type!r}",
                       errors={"target_type": [f"Must be one of: {', '.join(TARGET_TYPES)}."]})


def named_group_target(name: str, conn: db.Connector | None = None) -> Target:
    """The target of a named group as it is now (NotFound for an unknown name)."""
    group = conn.one("get_group", name=name) if conn else db.one("get_group", name=name)
    if group is None:
        raise NotFound(f"Group {name!r} not found",
                       errors={"group": [f"No group named {name!r}."]})
    return group_row_target(group)


def group_row_target(group: dict) -> Target:
    """The target of a group row (``get_group``) as read."""
    if group["filter"] is None:
        return Target(TARGET_GROUP, group=group["name"], static_group=True)
    return Target(TARGET_GROUP, group=group["name"],
                  tree=parse_target_filter(group["filter"], "filter"))


def _misplaced(field: str, owner: str) -> InvalidInput:
    return InvalidInput(f"{field} applies only to target_type {owner}",
                        errors={field: [f"Only allowed with target_type {owner}."]})


def _group_target(target_filter: dict | None) -> Target:
    if not target_filter:
        raise InvalidInput(
            "target_filter must name at least one key (use target_type all for every device)",
            errors={"target_filter": ["Must be an object with at least one key."]},
        )
    tree = parse_target_filter(target_filter, "target_filter")
    return Target(TARGET_GROUP, target_filter=target_filter, tree=tree)


def target_of_execution(execution: dict) -> Target:
    """The Target stored on a job_executions row (a named group as it is now)."""
    target_type = execution["target_type"]
    if target_type == TARGET_DEVICE:
        return Target(TARGET_DEVICE, device_uuids=tuple(execution["target_devices"] or ()))
    if target_type == TARGET_GROUP:
        if execution.get("target_group"):
            return named_group_target(execution["target_group"])
        return _group_target(execution["target_filter"])
    return Target(TARGET_ALL)


_summarised_facts: tuple[tuple[str, ...], ...] | None = None


def summarised_facts(conn: db.Connector) -> tuple[tuple[str, ...], ...]:
    """The inventory paths fact signatures summarise, read once per process (a migration
    changes them, and a server starts on its migrated database)."""
    global _summarised_facts
    if _summarised_facts is None:
        paths = conn.row("summarised_fact_paths")["paths"]
        _summarised_facts = tuple(tuple(path.split(".")) for path in paths)
    return _summarised_facts


def count_target_devices(target: Target, conn: db.Connector | None = None) -> int:
    """How many registered devices ``target`` reaches now (on ``conn``, else a connection of its
    own: a live "N devices match").

    A device list naming unregistered devices is refused with InvalidInput naming each one.
    """
    if conn is None:
        with db.transaction() as own, bounded_search(own):
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
    if target.static_group:
        return conn.row("count_static_group_members", name=target.group)["n"]
    if target.tree is None or counts_from_signatures(target.tree):
        return conn.row_filtered("count_matching_signatures",
                                 {"target_filter": target.predicate()})["n"]
    if counts_from_fact_signatures(target.tree, summarised_facts(conn)):
        return conn.row_filtered("count_matching_fact_signatures",
                                 {"target_filter": target.predicate()})["n"]
    numbers = number_range(target.tree)
    if numbers is not None:
        # The planner prices the index-only scan above a sequential scan of the narrow table,
        # though it reads a third of the pages (1M devices, all visible: 90-140 ms against
        # 200). Turned off for this statement alone; a failed one rolls the setting back.
        was = conn.row("prefer_index_scans")["was"]
        n = conn.row_filtered("count_matching_numbers", {"target_filter": numbers})["n"]
        conn.execute("restore_sequential_scans", setting=was)
        return n
    return conn.row_filtered("count_matching_devices", {"target_filter": target.predicate()})["n"]
