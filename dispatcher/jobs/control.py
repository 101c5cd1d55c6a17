"""Stopping and repeating work: cancel and retry, for a whole job or one device, whoever asks.

There is one cancel path and one retry path. An operator's cancel and a policy's (an abort
criterion met, an end time reached) close the job with the ``close_job`` statement and cancel
its rows with ``cancel_device_jobs``; an operator's retry, an automatic retry and a continuous
job taking a device back all queue new attempts with ``retry_device_jobs``. Each statement
writes one audit event per row it moves.

An operator's cancel marks the job CANCELED first (so the poll stops handing its QUEUED rows
out at once), then cancels its rows set-based in chunks of ``CANCEL_CHUNK_ROWS``, each its own
transaction, paged by device uuid; IN_PROGRESS rows only with ``force``. A policy cancels
inside the transaction of its sweep. A retry holds the job row while it queues rows again, so
a job cannot be completed between its rows being queued and the job being reopened. Devices
hear of both through an MQTT nudge: each function answers with what its commit leaves to do
(``dispatcher.outcome``), and the caller sends it.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable
from datetime import UTC, datetime

from dispatcher import audit, db
from dispatcher.errors import Conflict, NotFound
from dispatcher.jobs import completion, progress, reports, states
from dispatcher.jobs.states import Actor
from dispatcher.outcome import Decided, Outcome
from schemas.vocabulary import CANCELED, COMPLETED_JOB, FAILURES, LIVE_JOB, SCHEDULED

log = logging.getLogger(__name__)

CANCEL_CHUNK_ROWS = 10_000
# A completed job cannot be canceled; a canceled one can again (with force, to stop the rest).
CANCELABLE_JOB_STATUSES = sorted(LIVE_JOB | {CANCELED})
UNRETRYABLE_JOB_STATUSES = frozenset({CANCELED, SCHEDULED})


def cancel_execution(
    job_id: uuid.UUID, actor: str, *, force: bool = False, reason: str | None = None,
    chunk_rows: int = CANCEL_CHUNK_ROWS,
) -> Decided[dict]:
    """An operator cancels a job and its devices' pending rows; answer the job and how many
    rows changed."""
    now = datetime.now(UTC)
    with db.transaction() as c:
        job = _lock_job(c, job_id)
        if job["status"] in COMPLETED_JOB:
            raise Conflict(
                f"Job execution {job_id} is already {job['status']}",
                current_status=job["status"],
            )
        close_job(c, job_id, CANCELED, CANCELABLE_JOB_STATUSES, actor, "job.canceled", now,
                  reason, {"from": job["status"], "force": force})
    outcome = Outcome()
    for source in states.sources_for(CANCELED, Actor.SERVER, force):
        for chunk in _chunks(job_id, source, chunk_rows):
            with db.transaction() as c:
                outcome.merge(cancel_rows(c, job_id, [source], actor, now, reason, force,
                                          *chunk))
    with db.connect() as c:
        completion.snapshot_counters(c, job_id)
    log.info("job canceled job_id=%s force=%s devices=%d", job_id, force, outcome.moved_rows)
    return Decided({"job": progress.get_execution(job_id), "canceled_devices": outcome.moved_rows},
                   outcome)


def cancel_live_job(
    c: db.Connector, job_id: uuid.UUID, actor: str, action: str, now: datetime, reason: str,
    force: bool = False,
) -> Outcome:
    """A policy cancels a job that is still live, and its pending rows (IN_PROGRESS ones with
    ``force``), in the caller's transaction; nothing when the job has already ended."""
    if close_job(c, job_id, CANCELED, sorted(LIVE_JOB), actor, action, now, reason) is None:
        return Outcome()
    outcome = cancel_rows(c, job_id, states.sources_for(CANCELED, Actor.SERVER, force), actor,
                          now, reason, force)
    completion.snapshot_counters(c, job_id)
    log.info("job canceled job_id=%s action=%s reason=%r", job_id, action, reason)
    return outcome


def close_job(
    c: db.Connector, job_id: uuid.UUID, status: str, from_statuses: list[str], actor: str,
    action: str, now: datetime, reason: str | None = None, details: dict | None = None,
) -> dict | None:
    """End a job in one of ``from_statuses`` with ``status``, recording ``action``; None when
    the job is in none of them."""
    return c.one("close_job", job_id=job_id, status=status, from_statuses=from_statuses,
                 reason=reason, now=now, actor=actor, action=action,
                 details=db.jsonb(details or {}))


def cancel_rows(
    c: db.Connector, job_id: uuid.UUID, statuses: list[str], actor: str, now: datetime,
    reason: str | None, force: bool, after: uuid.UUID | None = None,
    until: uuid.UUID | None = None, device_uuid: uuid.UUID | None = None,
) -> Outcome:
    """Cancel the job's latest rows in ``statuses`` (one device's, or those of the devices in
    (after, until]); the canceled devices that had been handed the job are to be nudged."""
    rows = c.all_unprepared(
        "cancel_device_jobs", job_id=job_id, statuses=statuses, device_uuid=device_uuid,
        after=after, until=until, now=now, reason=reason, force=force, actor=actor,
    )
    outcome = Outcome(moved_rows=len(rows))
    outcome.nudge(job_id, "canceled", [row["device_uuid"] for row in rows if row["released"]])
    return outcome


def _chunks(
    job_id: uuid.UUID, status: str, chunk_rows: int
) -> Iterable[tuple[uuid.UUID | None, uuid.UUID | None]]:
    """(after, until] bounds of consecutive chunks of the job's latest rows in ``status``."""
    after = None
    while True:
        end = db.one("device_job_chunk_end", job_id=job_id, status=status,
                     after=after or uuid.UUID(int=0), chunk_size=chunk_rows)
        until = end["device_uuid"] if end else None
        yield after, until
        if until is None:
            return
        after = until


def cancel_device_job(
    job_id: uuid.UUID, device_uuid: uuid.UUID, actor: str, *, force: bool = False,
    reason: str | None = None,
) -> Decided[dict]:
    """Cancel one device's execution of a job (IN_PROGRESS only with force)."""
    with db.transaction() as c:
        row = reports.lock_for_transition(
            c, job_id, device_uuid, CANCELED, Actor.SERVER, force=force,
        )
        if not row.is_repeat:
            outcome = cancel_rows(c, job_id, [row.status], actor, datetime.now(UTC), reason,
                                  force, device_uuid=device_uuid)
    if row.is_repeat:
        return Decided(reports.get_device_job(job_id, device_uuid))
    outcome.may_have_completed.add(job_id)
    return Decided(reports.get_device_job(job_id, device_uuid), outcome)


def retry_execution(job_id: uuid.UUID, actor: str) -> Decided[dict]:
    """Queue again every device whose latest row failed, timed out or was rejected."""
    with db.transaction() as c:
        job = _lock_retryable_job(c, job_id)
        outcome = retry_rows(c, _failed_rows(c, job_id), actor, "device_job.retried",
                             datetime.now(UTC))
        if outcome.moved_rows:
            audit.record_event(
                c, actor, "job.retried", "job", job_id, job_id=job_id,
                details={"from": job["status"], "devices": outcome.moved_rows},
            )
    log.info("job retried job_id=%s devices=%d", job_id, outcome.moved_rows)
    return Decided({"job": progress.get_execution(job_id), "retried_devices": outcome.moved_rows},
                   outcome)


def retry_device_job(job_id: uuid.UUID, device_uuid: uuid.UUID, actor: str) -> Decided[dict]:
    """Queue one device's failed execution of a job again, with the next execution number."""
    with db.transaction() as c:
        _lock_retryable_job(c, job_id)
        outcome = retry_rows(c, _failed_rows(c, job_id, device_uuid), actor,
                             "device_job.retried", datetime.now(UTC))
        if not outcome.moved_rows:
            current = reports.get_device_job(job_id, device_uuid)
            raise Conflict(
                f"Only a failed, timed-out or rejected execution can be retried; "
                f"this one is {current['status']}",
                current_status=current["status"],
            )
    return Decided(reports.get_device_job(job_id, device_uuid), outcome)


def retry_rows(
    c: db.Connector, ids: list[int], actor: str, action: str, now: datetime
) -> Outcome:
    """A new attempt for each of the rows ``ids`` (still their device's latest), recorded as
    ``action``, reopening a job that had completed; the devices are to be nudged."""
    outcome = Outcome()
    if not ids:
        return outcome
    for row in c.all("retry_device_jobs", ids=ids, now=now, actor=actor, action=action):
        outcome.nudge(row["job_id"], "queued", [row["device_uuid"]])
        outcome.moved_rows += 1
    return outcome


def _failed_rows(
    c: db.Connector, job_id: uuid.UUID, device_uuid: uuid.UUID | None = None
) -> list[int]:
    rows = c.all("failed_device_jobs", job_id=job_id, device_uuid=device_uuid,
                 failures=sorted(FAILURES))
    return [row["id"] for row in rows]


def _lock_job(conn: db.Connector, job_id: uuid.UUID) -> dict:
    job = conn.one("lock_job_execution", job_id=job_id)
    if job is None:
        raise NotFound(f"Job execution {job_id} not found")
    return job


def _lock_retryable_job(conn: db.Connector, job_id: uuid.UUID) -> dict:
    job = _lock_job(conn, job_id)
    if job["status"] in UNRETRYABLE_JOB_STATUSES:
        raise Conflict(
            f"Job execution {job_id} is {job['status']}; it cannot be retried",
            current_status=job["status"],
        )
    return job
