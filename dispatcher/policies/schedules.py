"""Cron slots of recurring jobs and maintenance windows (pure functions, no I/O).

A slot is an instant at which a cron expression fires, read in an IANA time zone (so "0 3 * * *"
in Europe/Paris is 03:00 local time on both sides of a DST change). Times in and out are
timezone-aware datetimes.

Catch-up policy: a beat that was down for several slots fires ONCE, for the latest slot that has
passed, and the skipped slots are reported, not replayed. A fleet-wide job run N times in a row
after an outage helps no one.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from croniter import croniter

# croniter walks whole seconds; nudging "now" past the second makes a slot at exactly "now" due.
_JUST_AFTER = timedelta(microseconds=1)
# Counting skipped slots of a per-second cron over a long outage must stay cheap.
MAX_SLOTS_COUNTED = 10_000


def _local(moment: datetime, timezone: str) -> datetime:
    if moment.tzinfo is None:
        raise ValueError("cron slots need timezone-aware datetimes")
    return moment.astimezone(ZoneInfo(timezone))


def next_slot(cron: str, after: datetime, timezone: str = "UTC") -> datetime:
    """The first slot strictly after ``after``."""
    return croniter(cron, _local(after, timezone)).get_next(datetime)


def latest_slot(cron: str, at_or_before: datetime, timezone: str = "UTC") -> datetime:
    """The last slot at or before ``at_or_before``."""
    return croniter(cron, _local(at_or_before, timezone) + _JUST_AFTER).get_prev(datetime)


def slots_between(
    cron: str, after: datetime, until: datetime, timezone: str = "UTC",
    limit: int = MAX_SLOTS_COUNTED,
) -> list[datetime]:
    """Slots in (after, until], oldest first, at most ``limit`` of them."""
    slots: list[datetime] = []
    walker = croniter(cron, _local(after, timezone))
    while len(slots) < limit:
        slot = walker.get_next(datetime)
        if slot > until:
            break
        slots.append(slot)
    return slots


@dataclass(frozen=True)
class Firing:
    """What a recurring job does on a beat tick."""

    slot: datetime | None  # the slot to fire now, or None when nothing is due
    skipped_slots: int  # due slots passed over by the catch-up policy
    next_run_at: datetime | None  # the slot after this one, None when the schedule has ended


def plan_firing(
    cron: str, timezone: str, due_since: datetime, now: datetime,
    end_time: datetime | None = None, runs_left: int | None = None,
) -> Firing:
    """Which slot to fire at ``now`` for a job whose next slot was ``due_since``.

    Fires the latest slot in [due_since, now] once; earlier missed slots count as skipped.
    """
    if due_since > now:
        return Firing(None, 0, due_since)
    slot = latest_slot(cron, now, timezone)
    if end_time is not None and slot > end_time:
        # The schedule ended during an outage: fire the last slot before the end, if it is due.
        slot = latest_slot(cron, end_time, timezone)
    if slot < due_since:
        return Firing(None, 0, _bounded_next(cron, now, timezone, end_time, runs_left))
    skipped = len(slots_between(cron, due_since - _JUST_AFTER, slot, timezone)) - 1
    left_after = None if runs_left is None else runs_left - 1
    return Firing(slot, max(skipped, 0), _bounded_next(cron, now, timezone, end_time, left_after))


def _bounded_next(
    cron: str, now: datetime, timezone: str, end_time: datetime | None, runs_left: int | None
) -> datetime | None:
    if runs_left is not None and runs_left <= 0:
        return None
    upcoming = next_slot(cron, now, timezone)
    if end_time is not None and upcoming > end_time:
        return None
    return upcoming


def first_run_at(
    cron: str, timezone: str, start: datetime, end_time: datetime | None = None
) -> datetime | None:
    """The first slot at or after ``start``, or None when it would fall after ``end_time``."""
    first = next_slot(cron, start - _JUST_AFTER, timezone)
    if end_time is not None and first > end_time:
        return None
    return first


@dataclass(frozen=True)
class Window:
    opens_at: datetime
    closes_at: datetime


def current_or_next_window(
    windows: list[dict], now: datetime, timezone: str = "UTC"
) -> Window:
    """The maintenance window open at ``now`` (closing last), else the one opening next.

    ``windows`` are ``{"start": cron, "duration_minutes": n}``: each window opens at every
    slot of its cron and stays open for its duration.
    """
    if not windows:
        raise ValueError("no maintenance windows")
    open_now: list[Window] = []
    upcoming: list[Window] = []
    for spec in windows:
        duration = timedelta(minutes=spec["duration_minutes"])
        opened = latest_slot(spec["start"], now, timezone)
        if now < opened + duration:
            open_now.append(Window(opened, opened + duration))
        opens = next_slot(spec["start"], now, timezone)
        upcoming.append(Window(opens, opens + duration))
    if open_now:
        return max(open_now, key=lambda w: w.closes_at)
    return min(upcoming, key=lambda w: w.opens_at)
