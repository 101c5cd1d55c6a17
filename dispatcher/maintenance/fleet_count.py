"""The fleet is counted into one row (``dispatcher.fleet.counts``): one scan of the devices every
``FLEET_COUNT_INTERVAL_S``, so that no page scans them."""

from __future__ import annotations

from datetime import datetime

from dispatcher.config import Settings
from dispatcher.fleet import counts
from dispatcher.maintenance.sweep import Sweep
from dispatcher.outcome import Outcome


def count_fleet(now: datetime, settings: Settings) -> Outcome:
    counts.count_fleet(now, settings.device_online_within_s)
    return Outcome()


SWEEP = Sweep("maintenance.count_fleet", "fleet_count_interval_s", None, count_fleet)
