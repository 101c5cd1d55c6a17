"""Rows past their deadline (a job's timeout, a step's timeout) become TIMED_OUT."""

from __future__ import annotations

import logging
import time
from datetime import datetime

from dispatcher import db
from dispatcher.config import Settings
from dispatcher.maintenance.sweep import Sweep, rest_after_chunk
from dispatcher.outcome import Outcome
from dispatcher.policies import POLICY_ACTOR

log = logging.getLogger(__name__)

# Chunks of a few thousand rows, each a short transaction, with a rest after each (see
# rest_after_chunk): devices polling meanwhile wait for no more than one chunk.
BATCH_SIZE = 2_000
TIMEOUT_REASON = "no terminal status before the timeout"


def time_out_overdue(now: datetime, settings: Settings) -> Outcome:
    """Overdue rows become TIMED_OUT, one short transaction per batch, resting between them."""
    outcome = Outcome()
    while True:
        chunk_started = time.monotonic()
        per_job = db.all(
            "time_out_overdue", now=now, chunk_size=BATCH_SIZE, reason=TIMEOUT_REASON,
            actor=POLICY_ACTOR,
        )
        moved = sum(r["n"] for r in per_job)
        outcome.may_have_completed.update(r["job_id"] for r in per_job)
        outcome.moved_rows += moved
        if moved < BATCH_SIZE:
            break
        rest_after_chunk(chunk_started)
    if outcome.moved_rows:
        log.info("timeout sweep rows=%d jobs=%d", outcome.moved_rows,
                 len(outcome.may_have_completed))
    return outcome


SWEEP = Sweep("maintenance.time_out_overdue", "policy_sweep_interval_s", BATCH_SIZE,
              time_out_overdue)
