"""Recurring jobs fire the runs whose slot has come (``dispatcher.policies.recurring``)."""

from __future__ import annotations

from datetime import datetime

from dispatcher.config import Settings
from dispatcher.maintenance.sweep import Sweep
from dispatcher.outcome import Outcome
from dispatcher.policies import recurring

BATCH_SIZE = 1_000


def run(now: datetime, settings: Settings) -> Outcome:
    return recurring.fire_due_runs(now, limit=BATCH_SIZE)


SWEEP = Sweep("maintenance.fire_due_runs", "policy_sweep_interval_s", BATCH_SIZE, run)
