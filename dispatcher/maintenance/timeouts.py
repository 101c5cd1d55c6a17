"""Rows past their deadline (a job's timeout, a step's timeout) become TIMED_OUT."""

from __future__ import annotations

import logging
from datetime import datetime

from dispatcher import db
from dispatcher.config import Settings
from dispatcher.maintenance.sweep import Sweep
from dispatcher.outcome import Outcome
from dispatcher.policies import POLICY_ACTOR

log = logging.getLogger(__name__)

BATCH_SIZE = 5_000
TIMEOUT_REASON = "no terminal status before the timeout"


def time_out_overdue(now: datetime, settings: Settings) -> Outcome:
    """Overdue rows become TIMED_OUT, one short transaction per batch."""
    outcome = Outcome()
    while True:
        per_job = db.all(
            "time_out_overdue", now=now, chunk_size=BATCH_SIZE, reason=TIMEOUT_REASON,
            actor=POLICY_ACTOR,
        )
        moved = sum(r["n"] for r in per_job)
        outcome.may_have_completed.update(r["job_id"] for r in per_job)
        outcome.moved_rows += moved
        if moved < BATCH_SIZE:
            break
    if outcome.moved_rows:
        log.info("timeout sweep rows=%d jobs=%d", outcome.moved_rows,
                 len(outcome.may_have_completed))
    return outcome


SWEEP = Sweep("maintenance.time_out_overdue", "policy_sweep_interval_s", BATCH_SIZE,
              time_out_overdue)
