"""Jobs whose end time has passed get their ``end_behavior``."""

from __future__ import annotations

import logging
import uuid
from datetime import datetime

from dispatcher import db
from dispatcher.config import Settings
from dispatcher.jobs import control
from dispatcher.maintenance.sweep import Sweep
from dispatcher.outcome import Outcome
from dispatcher.policies import POLICY_ACTOR
from schemas.vocabulary import FORCE_CANCEL, LIVE_JOB, RECURRING, SCHEDULED, STOP_ROLLOUT, SUCCEEDED

log = logging.getLogger(__name__)

BATCH_SIZE = 1_000


def end_jobs_past_end_time(now: datetime, settings: Settings) -> Outcome:
    """Apply ``end_behavior`` to jobs whose end time has passed.

    STOP_ROLLOUT (the default): rows not yet released are REMOVED, released ones go on.
    CANCEL: the job is CANCELED with its QUEUED rows. FORCE_CANCEL: IN_PROGRESS rows too.
    A recurring parent stops firing; a continuous job stops taking new devices.
    """
    outcome = Outcome()
    with db.transaction() as c:
        for job in c.all("jobs_past_end", now=now, limit=BATCH_SIZE):
            outcome.merge(_end_job(c, job, now))
            c.execute("mark_end_applied", job_id=job["job_id"], now=now)
    for row in db.all("ended_jobs_holding_rows", now=now):
        with db.transaction() as c:
            outcome.merge(_stop_rollout(c, row["job_id"], now))
    return outcome


def _end_job(c: db.Connector, job: dict, now: datetime) -> Outcome:
    job_id = job["job_id"]
    if job["execution_type"] == RECURRING:
        control.close_job(c, job_id, SUCCEEDED, sorted(LIVE_JOB), POLICY_ACTOR,
                          "job.schedule_ended", now, "schedule end time reached")
        return Outcome()
    behavior = job["end_behavior"] or STOP_ROLLOUT
    if behavior == STOP_ROLLOUT and job["status"] != SCHEDULED:
        return _stop_rollout(c, job_id, now)
    return control.cancel_live_job(c, job_id, POLICY_ACTOR, "job.ended", now,
                                   f"end time reached ({behavior})",
                                   force=behavior == FORCE_CANCEL)


def _stop_rollout(c: db.Connector, job_id: uuid.UUID, now: datetime) -> Outcome:
    outcome = Outcome(may_have_completed={job_id})
    removed = c.row(
        "remove_unreleased", job_id=job_id, now=now,
        reason="rollout stopped at the job's end time", actor=POLICY_ACTOR,
    )
    outcome.moved_rows = removed["n"]
    log.info("rollout stopped at end time job_id=%s removed=%d", job_id, removed["n"])
    return outcome


SWEEP = Sweep("maintenance.end_jobs_past_end_time", "policy_sweep_interval_s", BATCH_SIZE,
              end_jobs_past_end_time)
