"""Rollouts release what their rate allows now (``dispatcher.policies.rollout``)."""

from __future__ import annotations

from datetime import datetime

from dispatcher.config import Settings
from dispatcher.maintenance.sweep import Sweep
from dispatcher.outcome import Outcome
from dispatcher.policies import rollout


def run(now: datetime, settings: Settings) -> Outcome:
    return rollout.release_waves(now)


SWEEP = Sweep("maintenance.release_waves", "policy_sweep_interval_s", None, run)
