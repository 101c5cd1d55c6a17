"""Live jobs that meet one of their abort criteria are canceled (``dispatcher.policies.abort``)."""

from __future__ import annotations

from datetime import datetime

from dispatcher.config import Settings
from dispatcher.maintenance.sweep import Sweep
from dispatcher.outcome import Outcome
from dispatcher.policies import abort


def run(now: datetime, settings: Settings) -> Outcome:
    return abort.apply_abort_criteria(now)


SWEEP = Sweep("maintenance.apply_abort_criteria", "policy_sweep_interval_s", None, run)
