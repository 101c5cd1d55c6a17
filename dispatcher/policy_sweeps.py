"""The periodic work of execution policies, one function per sweep.

Beat runs each sweep every few seconds; PostgreSQL decides. Every sweep locks what it moves
with ``SKIP LOCKED`` (a second beat or worker running the same sweep skips it) and every
decision is a conditional statement, so running a sweep twice, or twice at once, leaves the
same rows as running it once. Each sweep takes its clock as ``now`` so tests can drive time.

A sweep returns an ``Outcome``: which devices to nudge, which jobs to fan out, and which jobs
may have just finished (their rollup follows); the caller acts on it after the commit.
"""

from __future__ import annotations

import logging
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime

from dispatcher import abort, db, rollout, rollup, schedules
from dispatcher.config import Settings
from dispatcher.enqueue import enqueue_fan_out, enqueue_nudge

log = logging.getLogger(__name__)

POLICY_ACTOR = "system:policies"
TIMEOUT_CHUNK_SIZE = 5_000
BATCH_SIZE = 1_000
TIMEOUT_REASON = "no terminal status before the timeout"


@dataclass
class Outcome:
    """What a sweep leaves for the caller to do once its changes are committed."""

    nudges: dict[tuple[uuid.UUID, str], list[uuid.UUID]] = field(
        default_factory=lambda: defaultdict(list)
    )
    # (job, event): every device the event is about (its latest, released row in that status).
    job_nudges: set[tuple[uuid.UUID, str]] = field(default_factory=set)
    fan_outs: list[uuid.UUID] = field(default_factory=list)
    touched_jobs: set[uuid.UUID] = field(default_factory=set)
    moved_rows: int = 0

    def nudge(self, job_id: uuid.UUID, event: str, device_uuids: list[uuid.UUID]) -> None:
        if device_uuids:
            self.nudges[(job_id, event)].extend(device_uuids)

    def merge(self, other: Outcome) -> Outcome:
        for key, devices in other.nudges.items():
            self.nudges[key].extend(devices)
        self.job_nudges |= other.job_nudges
        self.fan_outs.extend(other.fan_outs)
        self.touched_jobs |= other.touched_jobs
        self.moved_rows += other.moved_rows
        return self


def carry_out(outcome: Outcome, settings: Settings) -> None:
    """After a sweep has committed: nudge devices, enqueue fan-outs, roll up touched jobs."""
    for (job_id, event), devices in outcome.nudges.items():
        enqueue_nudge(settings, job_id, event, devices)
    for job_id, event in outcome.job_nudges:
        enqueue_nudge(settings, job_id, event)
    for job_id in outcome.fan_outs:
        enqueue_fan_out(settings, job_id)
    for job_id in outcome.touched_jobs:
        rollup.finalize_if_complete(job_id)


def start_due_jobs(now: datetime, limit: int = BATCH_SIZE) -> Outcome:
    """SCHEDULED jobs whose start time has come become QUEUED and are fanned out."""
    outcome = Outcome()
    rows = db.all("policy_start_due_jobs", now=now, limit=limit, actor=POLICY_ACTOR)
    outcome.fan_outs = [r["job_id"] for r in rows]
    for job_id in outcome.fan_outs:
        log.info("scheduled job started job_id=%s", job_id)
    return outcome


def release_waves(now: datetime) -> Outcome:
    """Release what each rollout's rate allows now; the released devices are nudged."""
    outcome = Outcome()
    for row in db.all("policy_rollout_jobs", now=now):
        with db.transaction() as c:
            progress = c.one(
                "policy_lock_rollout_progress", job_id=row["job_id"], now=now,
                window_s=rollout.ROLLOUT_WINDOW_S,
            )
            if progress is None:
                continue
            allowed = rollout.releasable_now(
                progress["rollout_config"],
                rollout.RolloutProgress(
                    progress["released_last_minute"], progress["notified_devices"],
                    progress["succeeded_devices"],
                ),
            )
            if not allowed:
                continue
            rate = rollout.rate_per_minute(
                progress["rollout_config"], progress["notified_devices"],
                progress["succeeded_devices"],
            )
            released = c.all(
                "policy_release_wave", job_id=row["job_id"], limit=allowed, now=now,
                rate_per_minute=rate, actor=POLICY_ACTOR,
            )
        devices = [r["device_uuid"] for r in released]
        outcome.nudge(row["job_id"], "queued", devices)
        outcome.moved_rows += len(devices)
        log.info("rollout wave job_id=%s released=%d rate_per_minute=%d",
                 row["job_id"], len(devices), rate)
    return outcome


def time_out_overdue(now: datetime, chunk_size: int = TIMEOUT_CHUNK_SIZE) -> Outcome:
    """Overdue rows become TIMED_OUT, one short transaction per chunk."""
    outcome = Outcome()
    while True:
        per_job = db.all(
            "policy_time_out_overdue", now=now, chunk_size=chunk_size, reason=TIMEOUT_REASON,
            actor=POLICY_ACTOR,
        )
        moved = sum(r["n"] for r in per_job)
        outcome.touched_jobs.update(r["job_id"] for r in per_job)
        outcome.moved_rows += moved
        if moved < chunk_size:
            break
    if outcome.moved_rows:
        log.info("timeout sweep rows=%d jobs=%d", outcome.moved_rows, len(outcome.touched_jobs))
    return outcome


def end_jobs_past_end_time(now: datetime, limit: int = BATCH_SIZE) -> Outcome:
    """Apply ``end_behavior`` to jobs whose end time has passed.

    STOP_ROLLOUT (the default): rows not yet released are REMOVED, released ones go on.
    CANCEL: the job is CANCELED with its QUEUED rows. FORCE_CANCEL: IN_PROGRESS rows too.
    A recurring parent stops firing; a continuous job stops taking new devices.
    """
    outcome = Outcome()
    with db.transaction() as c:
        for job in c.all("policy_jobs_past_end", now=now, limit=limit):
            outcome.merge(_end_job(c, job, now))
            c.execute("policy_mark_end_applied", job_id=job["job_id"], now=now)
    for row in db.all("policy_ended_jobs_holding_rows", now=now):
        with db.transaction() as c:
            outcome.merge(_stop_rollout(c, row["job_id"], now))
    return outcome


def _end_job(c: db.Connector, job: dict, now: datetime) -> Outcome:
    job_id = job["job_id"]
    if job["execution_type"] == "recurring":
        c.one("policy_close_job", job_id=job_id, status="SUCCEEDED", now=now,
              reason="schedule end time reached", action="job.schedule_ended",
              actor=POLICY_ACTOR)
        return Outcome()
    behavior = job["end_behavior"] or "STOP_ROLLOUT"
    if behavior == "STOP_ROLLOUT" and job["status"] != "SCHEDULED":
        return _stop_rollout(c, job_id, now)
    statuses = ["QUEUED", "IN_PROGRESS"] if behavior == "FORCE_CANCEL" else ["QUEUED"]
    return cancel_job(c, job_id, now, f"end time reached ({behavior})", "job.ended", statuses)


def _stop_rollout(c: db.Connector, job_id: uuid.UUID, now: datetime) -> Outcome:
    outcome = Outcome(touched_jobs={job_id})
    removed = c.one(
        "policy_remove_unreleased", job_id=job_id, now=now,
        reason="rollout stopped at the job's end time", actor=POLICY_ACTOR,
    )
    outcome.moved_rows = removed["n"]
    log.info("rollout stopped at end time job_id=%s removed=%d", job_id, removed["n"])
    return outcome


def cancel_job(
    c: db.Connector, job_id: uuid.UUID, now: datetime, reason: str, action: str,
    row_statuses: list[str],
) -> Outcome:
    """Cancel a live job and its current rows in ``row_statuses``, recording ``reason``."""
    outcome = Outcome()
    if c.one("policy_close_job", job_id=job_id, status="CANCELED", now=now, reason=reason,
             action=action, actor=POLICY_ACTOR) is None:
        return outcome
    devices = c.all(
        "policy_cancel_rows", job_id=job_id, statuses=row_statuses, now=now, reason=reason,
        actor=POLICY_ACTOR,
    )
    outcome.nudge(job_id, "canceled", [r["device_uuid"] for r in devices])
    outcome.moved_rows = len(devices)
    log.info("job canceled job_id=%s action=%s reason=%r", job_id, action, reason)
    return outcome


def apply_abort_criteria(now: datetime) -> Outcome:
    """Cancel every live job that meets one of its abort criteria (QUEUED rows too)."""
    outcome = Outcome()
    for job in db.all("policy_abort_candidates"):
        criterion = abort.met_criterion(job["abort_config"], job["counts"])
        if criterion is None:
            continue
        with db.transaction() as c:
            if c.one("policy_lock_live_job", job_id=job["job_id"]) is None:
                continue
            reason = abort.abort_reason(criterion, job["counts"])
            outcome.merge(cancel_job(c, job["job_id"], now, reason, "job.aborted", ["QUEUED"]))
    return outcome


def retry_failed_rows(now: datetime, limit: int = BATCH_SIZE) -> Outcome:
    """A new attempt for each failed row that its job's retry_config still allows."""
    outcome = Outcome()
    with db.transaction() as c:
        ids = [r["id"] for r in c.all("policy_retryable_rows", limit=limit)]
        attempts = _next_attempts(c, ids, now, "device_job.retried")
    for row in attempts:
        outcome.nudge(row["job_id"], "queued", [row["device_uuid"]])
    outcome.moved_rows = len(attempts)
    if attempts:
        log.info("auto-retry rows=%d", len(attempts))
    return outcome


def _next_attempts(c: db.Connector, ids: list[int], now: datetime, action: str) -> list[dict]:
    if not ids:
        return []
    old = c.all("policy_supersede_rows", ids=ids)
    return c.all(
        "policy_insert_next_attempts",
        job_ids=[r["job_id"] for r in old],
        device_uuids=[r["device_uuid"] for r in old],
        execution_numbers=[r["execution_number"] for r in old],
        previous_statuses=[r["status"] for r in old],
        now=now, action=action, actor=POLICY_ACTOR,
    )


def reconcile_continuous(
    now: datetime, job_id: uuid.UUID | None = None, device_uuid: uuid.UUID | None = None,
) -> Outcome:
    """Bring continuous jobs in line with the fleet: matching devices get a row, QUEUED rows
    of devices that stopped matching are REMOVED, and devices that match again get a new
    attempt. Narrow it to one job or one device (the device create/update hook)."""
    outcome = Outcome()
    scope = {"job_id": job_id, "device_uuid": device_uuid, "now": now}
    with db.transaction() as c:
        added = c.all("policy_reconcile_add", **scope, actor=POLICY_ACTOR)
        removed = c.all("policy_reconcile_remove", **scope, actor=POLICY_ACTOR)
        rematched = [r["id"] for r in c.all("policy_rematched_rows", **scope, limit=BATCH_SIZE)]
        again = _next_attempts(c, rematched, now, "device_job.requeued")
    for row in added:
        if row["released"]:
            outcome.nudge(row["job_id"], "queued", [row["device_uuid"]])
    for row in again:
        outcome.nudge(row["job_id"], "queued", [row["device_uuid"]])
    for row in removed:
        outcome.touched_jobs.add(row["job_id"])
        if row["released"]:
            outcome.nudge(row["job_id"], "canceled", [row["device_uuid"]])
    outcome.moved_rows = len(added) + len(removed) + len(again)
    if outcome.moved_rows:
        log.info("continuous reconcile added=%d removed=%d requeued=%d device_uuid=%s",
                 len(added), len(removed), len(again), device_uuid)
    return outcome


def reconcile_device(device_uuid: uuid.UUID, settings: Settings | None = None) -> Outcome:
    """A device was registered or changed: bring it in line with every continuous job now."""
    outcome = reconcile_continuous(datetime.now(UTC), device_uuid=device_uuid)
    if settings is not None:
        carry_out(outcome, settings)
    return outcome


def advance_maintenance_windows(now: datetime) -> Outcome:
    """Jobs whose window has closed get their next window (``moved_rows`` counts them), and
    the waiting devices of each job whose window has opened are nudged, once a window."""
    outcome = Outcome()
    for job in db.all("policy_windows_to_advance", now=now):
        config = job["scheduling_config"]
        window = schedules.current_or_next_window(
            config["maintenance_windows"], now, config.get("timezone", "UTC")
        )
        db.execute("policy_set_window", job_id=job["job_id"], window_opens_at=window.opens_at,
                   window_closes_at=window.closes_at)
        outcome.moved_rows += 1
    for job in db.all("policy_claim_opened_windows", now=now):
        outcome.job_nudges.add((job["job_id"], "queued"))
        log.info("maintenance window opened job_id=%s", job["job_id"])
    return outcome
