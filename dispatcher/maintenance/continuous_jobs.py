"""Continuous jobs follow the fleet: devices that match get a row, devices that stopped matching
lose their queued one (``dispatcher.policies.continuous``)."""

from __future__ import annotations

from datetime import datetime

from dispatcher.config import Settings
from dispatcher.maintenance.sweep import Sweep
from dispatcher.outcome import Outcome
from dispatcher.policies import continuous

BATCH_SIZE = 1_000


def run(now: datetime, settings: Settings) -> Outcome:
    return continuous.reconcile_continuous(now, limit=BATCH_SIZE)


SWEEP = Sweep("maintenance.reconcile_continuous", "continuous_reconcile_interval_s", BATCH_SIZE,
              run)
