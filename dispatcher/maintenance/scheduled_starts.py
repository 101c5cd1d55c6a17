"""Scheduled jobs whose start time has come become QUEUED and are fanned out."""

from __future__ import annotations

import logging
from datetime import datetime

from dispatcher import db
from dispatcher.config import Settings
from dispatcher.maintenance.sweep import Sweep
from dispatcher.outcome import Outcome
from dispatcher.policies import POLICY_ACTOR

log = logging.getLogger(__name__)

BATCH_SIZE = 1_000


def start_due_jobs(now: datetime, settings: Settings) -> Outcome:
    """SCHEDULED jobs whose start time has come become QUEUED and are fanned out."""
    rows = db.all("start_due_jobs", now=now, limit=BATCH_SIZE, actor=POLICY_ACTOR)
    outcome = Outcome(fan_outs=[r["job_id"] for r in rows])
    for job_id in outcome.fan_outs:
        log.info("scheduled job started job_id=%s", job_id)
    return outcome


SWEEP = Sweep("maintenance.start_due_jobs", "policy_sweep_interval_s", BATCH_SIZE,
              start_due_jobs)
