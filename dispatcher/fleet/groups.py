"""Named groups: a dynamic group stores a filter and its members follow it as devices change
(inventory included); a static group lists its devices. Jobs target a group by name, and read
it as it is at each fan-out and each continuous reconcile.
"""

from __future__ import annotations

import logging
import time
import uuid
from datetime import UTC, datetime

from dispatcher import audit, db
from dispatcher.errors import Conflict, InvalidInput, NotFound
from dispatcher.fleet.filters import bounded_search, parse_target_filter
from dispatcher.jobs.targeting import (
    count_target_devices,
    group_row_target,
    named_group_target,
)
from dispatcher.outcome import Decided, Outcome
from dispatcher.policies import continuous

log = logging.getLogger(__name__)

DYNAMIC = "dynamic"
STATIC = "static"

# A list of groups counts the members of every group it shows, each the way a preview counts
# (device signatures or the GIN indexes: milliseconds), all of them within this budget. A group
# whose filter no index serves (a range over a large fleet) that does not finish in what is left
# of it is listed without a count (null), rather than slowing the page: its own page counts it.
LIST_COUNT_BUDGET_MS = 2000
# Below this much of the budget left, the remaining groups are not counted at all.
LIST_COUNT_MIN_MS = 20


def create_group(body: dict, actor: str) -> Decided[dict]:
    """A new group from ``{name, description, filter}`` or ``{name, description, devices}``."""
    target_filter, devices = _kind_fields(body)
    with db.transaction() as c:
        group = c.row("insert_group", name=body["name"], description=body.get("description", ""),
                      filter=db.jsonb(target_filter), created_by=actor)
        if devices is not None:
            _set_members(c, body["name"], devices)
        audit.record_event(c, actor, "group.created", "group", body["name"],
                           details={"kind": kind_of(group)})
    return Decided(get_group(body["name"]), _follow(body["name"]))


def get_group(name: str) -> dict:
    """A group with its kind, its member count now, and a static group's devices."""
    group = db.one("get_group", name=name)
    if group is None:
        raise NotFound(f"Group {name!r} not found")
    return _shown(group)


def list_groups(limit: int, offset: int) -> dict:
    """A page of groups, each with its member count now (null for one not counted within the
    page's budget, ``LIST_COUNT_BUDGET_MS``)."""
    page = db.page("list_groups", "groups", "count_groups", limit=limit, offset=offset)
    deadline = time.monotonic() + LIST_COUNT_BUDGET_MS / 1000
    page["groups"] = [{**g, "kind": kind_of(g), "member_count": _count_before(g, deadline)}
                      for g in page["groups"]]
    return page


def _count_before(group: dict, deadline: float) -> int | None:
    """The group's member count, or None when it cannot be had before ``deadline``."""
    left_ms = int((deadline - time.monotonic()) * 1000)
    if left_ms < LIST_COUNT_MIN_MS:
        return None
    try:
        with db.transaction() as c, bounded_search(c, left_ms):
            return count_target_devices(group_row_target(group), c)
    except InvalidInput:
        return None


def update_group(name: str, changes: dict, actor: str) -> Decided[dict]:
    """Change a group's description, its filter (dynamic) or its devices (static); a group
    does not change kind."""
    with db.transaction() as c:
        group = c.one("lock_group", name=name)
        if group is None:
            raise NotFound(f"Group {name!r} not found")
        kind = kind_of(group)
        if "filter" in changes and kind == STATIC:
            raise InvalidInput("A static group has devices, not a filter",
                               errors={"filter": ["Not allowed on a static group."]})
        if "devices" in changes and kind == DYNAMIC:
            raise InvalidInput("A dynamic group's members follow its filter",
                               errors={"devices": ["Not allowed on a dynamic group."]})
        target_filter = changes.get("filter", group["filter"])
        if "filter" in changes:
            parse_target_filter(target_filter, "filter")
        c.row("update_group", name=name, description=changes.get("description",
                                                                  group["description"]),
              filter=db.jsonb(target_filter))
        if "devices" in changes:
            _set_members(c, name, changes["devices"])
        audit.record_event(c, actor, "group.updated", "group", name,
                           details={"fields": sorted(changes)})
    return Decided(get_group(name), _follow(name))


def delete_group(name: str, actor: str) -> None:
    """Delete a group; refused (409) while an unfinished job targets it."""
    with db.transaction() as c:
        if c.one("lock_group", name=name) is None:
            raise NotFound(f"Group {name!r} not found")
        jobs = c.all("active_jobs_of_group", name=name)
        if jobs:
            raise Conflict(f"Group {name!r} is the target of {len(jobs)} unfinished job(s); "
                           "cancel them first",
                           job_ids=[str(j["job_id"]) for j in jobs])
        c.execute("delete_group", name=name)
        audit.record_event(c, actor, "group.deleted", "group", name)


def kind_of(group: dict) -> str:
    return STATIC if group["filter"] is None else DYNAMIC


def _shown(group: dict) -> dict:
    shown = {**group, "kind": kind_of(group)}
    with db.transaction() as c, bounded_search(c):
        if group["filter"] is None:
            shown["devices"] = [r["device_uuid"] for r in
                                c.all("group_member_uuids", name=group["name"])]
        shown["member_count"] = count_target_devices(named_group_target(group["name"], c), c)
    return shown


def _kind_fields(body: dict) -> tuple[dict | None, list[uuid.UUID] | None]:
    has_filter, has_devices = body.get("filter") is not None, body.get("devices") is not None
    if has_filter == has_devices:
        raise InvalidInput(
            "A group has either a filter (dynamic) or devices (static)",
            errors={"filter": ["Give exactly one of filter and devices."],
                    "devices": ["Give exactly one of filter and devices."]})
    if has_filter:
        parse_target_filter(body["filter"], "filter")
    return body.get("filter"), body.get("devices")


def _set_members(c: db.Connector, name: str, devices: list[uuid.UUID]) -> None:
    unique = list(dict.fromkeys(devices))
    unknown = [r["uuid"] for r in c.all("unknown_devices", device_uuids=unique)]
    if unknown:
        raise InvalidInput(f"Unknown device(s): {', '.join(str(u) for u in unknown)}",
                           errors={"devices": [f"Unknown device: {u}" for u in unknown]})
    c.execute("set_group_members", name=name, device_uuids=unique)


def _follow(name: str) -> Outcome:
    """Continuous jobs on the group follow its new filter or members at once."""
    outcome = Outcome()
    now = datetime.now(UTC)
    for job in db.all("active_jobs_of_group", name=name):
        if job["execution_type"] == "continuous":
            outcome.merge(continuous.reconcile_continuous(now, job_id=job["job_id"]))
    return outcome
