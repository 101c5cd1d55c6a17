"""The fleet's numbers (how many devices, how many online), counted by a periodic sweep
(``dispatcher.maintenance.fleet_count``) into one row, so that no page scans the devices."""

from __future__ import annotations

from datetime import UTC, datetime

from dispatcher import db
from dispatcher.config import Settings


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
        counts = count_fleet(now, within_s)
    return counts


def count_fleet(now: datetime, online_within_s: int) -> dict:
    """Count the devices, and those seen within ``online_within_s`` of ``now``, into
    ``fleet_counts``; answer the new numbers."""
    return db.row("count_fleet", now=now, online_within_s=online_within_s)
