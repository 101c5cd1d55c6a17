"""Jobs whose every device has finished but that were never completed: whoever moved their last
rows committed them, then died or lost the database before completing the job (a timeout sweep
cut short between two batches, an API process killed right after a report). Completion is
idempotent (``dispatcher.jobs.completion.complete_if_done``), so this only finishes what was
left; it runs as often as the stalled fan-out sweep, the other sweep that mends interruptions."""

from __future__ import annotations

import logging
from datetime import datetime

from dispatcher import db
from dispatcher.config import Settings
from dispatcher.maintenance.sweep import Sweep
from dispatcher.outcome import Outcome

log = logging.getLogger(__name__)

BATCH_SIZE = 500


def complete_finished_jobs(now: datetime, settings: Settings) -> Outcome:
    """The active jobs with no device left pending, to be completed."""
    finished = {row["job_id"] for row in db.all("finished_jobs_not_completed", limit=BATCH_SIZE)}
    if finished:
        log.info("finished jobs left uncompleted jobs=%d", len(finished))
    return Outcome(may_have_completed=finished)


SWEEP = Sweep("maintenance.complete_finished_jobs", "fanout_sweep_interval_s", BATCH_SIZE,
              complete_finished_jobs)
