"""The sweeps of scheduling policies: starting scheduled jobs, timing out overdue rows, ending
jobs at their end time, and moving maintenance windows on (see ``dispatcher.policies``)."""

from __future__ import annotations

import logging
import uuid
from datetime import datetime

from dispatcher import db
from dispatcher.jobs import control
from dispatcher.jobs.outcome import Outcome
from dispatcher.policies import BATCH_SIZE, POLICY_ACTOR, schedules
from schemas.vocabulary import (
    FORCE_CANCEL,
    LIVE_JOB,
    RECURRING,
    SCHEDULED,
    STOP_ROLLOUT,
    SUCCEEDED,
)

log = logging.getLogger(__name__)

TIMEOUT_CHUNK_SIZE = 5_000
TIMEOUT_REASON = "no terminal status before the timeout"


def start_due_jobs(now: datetime, limit: int = BATCH_SIZE) -> Outcome:
    """SCHEDULED jobs whose start time has come become QUEUED and are fanned out."""
    outcome = Outcome()
    rows = db.all("start_due_jobs", now=now, limit=limit, actor=POLICY_ACTOR)
    outcome.fan_outs = [r["job_id"] for r in rows]
    for job_id in outcome.fan_outs:
        log.info("scheduled job started job_id=%s", job_id)
    return outcome


def time_out_overdue(now: datetime, chunk_size: int = TIMEOUT_CHUNK_SIZE) -> Outcome:
    """Overdue rows become TIMED_OUT, one short transaction per chunk."""
    outcome = Outcome()
    while True:
        per_job = db.all(
            "time_out_overdue", now=now, chunk_size=chunk_size, reason=TIMEOUT_REASON,
            actor=POLICY_ACTOR,
        )
        moved = sum(r["n"] for r in per_job)
        outcome.may_have_completed.update(r["job_id"] for r in per_job)
        outcome.moved_rows += moved
        if moved < chunk_size:
            break
    if outcome.moved_rows:
        log.info("timeout sweep rows=%d jobs=%d", outcome.moved_rows,
                 len(outcome.may_have_completed))
    return outcome


def end_jobs_past_end_time(now: datetime, limit: int = BATCH_SIZE) -> Outcome:
    """Apply ``end_behavior`` to jobs whose end time has passed.

    STOP_ROLLOUT (the default): rows not yet released are REMOVED, released ones go on.
    CANCEL: the job is CANCELED with its QUEUED rows. FORCE_CANCEL: IN_PROGRESS rows too.
    A recurring parent stops firing; a continuous job stops taking new devices.
    """
    outcome = Outcome()
    with db.transaction() as c:
        for job in c.all("jobs_past_end", now=now, limit=limit):
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


def advance_maintenance_windows(now: datetime) -> Outcome:
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
        outcome.job_nudges.add((job["job_id"], "queued"))
        log.info("maintenance window opened job_id=%s", job["job_id"])
    return outcome
