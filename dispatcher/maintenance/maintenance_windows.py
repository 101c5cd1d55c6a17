"""Maintenance windows move on: a job whose window has closed gets its next one, and the
waiting devices of a job whose window has opened are nudged, once a window."""

from __future__ import annotations

import logging
from datetime import datetime

from dispatcher import db
from dispatcher.config import Settings
from dispatcher.maintenance.sweep import Sweep
from dispatcher.outcome import Outcome
from dispatcher.policies import schedules
from schemas.nudges import QUEUED_EVENT

log = logging.getLogger(__name__)


def advance_maintenance_windows(now: datetime, settings: Settings) -> Outcome:
    """Jobs whose window has closed get their next window (``moved_rows`` counts them), and
    the waiting devices of each job whose window has opened are nudged, once a window."""
    outcome = Outcome()
    for job in db.all("windows_to_advance", now=now):
        config = job["scheduling_config"]
        window = schedules.current_or_next_window(
            config["maintenance_windows"], now, config.get("timezone", "UTC")
        )
        db.execute("set_window", job_id=job["job_id"], window_opens_at=window.opens_at,
                   window_closes_at=window.closes_at)
        outcome.moved_rows += 1
    for job in db.all("claim_opened_windows", now=now):
        outcome.job_nudges.add((job["job_id"], QUEUED_EVENT))
        log.info("maintenance window opened job_id=%s", job["job_id"])
    return outcome


SWEEP = Sweep("maintenance.advance_maintenance_windows", "policy_sweep_interval_s", None,
              advance_maintenance_windows)
