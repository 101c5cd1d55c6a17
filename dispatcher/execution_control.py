"""Operator actions on a running execution: cancel and retry, for a whole job or one device.

Cancel marks the job CANCELED first (so the poll stops handing its QUEUED rows out at once),
then cancels its rows set-based in chunks of ``CANCEL_CHUNK_ROWS``, each its own transaction,
paged by device uuid; IN_PROGRESS rows only with ``force``. Retry re-queues the latest rows in
a failure status with the next execution number, in one transaction that holds the job row, so
a job cannot be completed between its rows being re-queued and the job being reopened.
Devices hear of both through an MQTT nudge, sent after the commit.
"""

from __future__ import annotations

import logging
import uuid

from dispatcher import audit, db, device_jobs, enqueue, progress, rollup, states
from dispatcher.config import Settings
from dispatcher.errors import Conflict, NotFound
from dispatcher.states import Actor

log = logging.getLogger(__name__)

CANCEL_CHUNK_ROWS = 10_000
FIRST_DEVICE_UUID = uuid.UUID(int=0)
# A finished job cannot be canceled; a canceled one can again (with force, to stop the rest).
UNCANCELABLE_JOB_STATUSES = frozenset({"SUCCEEDED", "FAILED"})
UNRETRYABLE_JOB_STATUSES = frozenset({"CANCELED", "SCHEDULED"})


def cancel_execution(
    job_id: uuid.UUID, actor: str, settings: Settings, *, force: bool = False,
    reason: str | None = None, chunk_rows: int = CANCEL_CHUNK_ROWS,
) -> dict:
    """Cancel a job and its devices' pending rows; answer the job and how many rows changed."""
    with db.transaction() as c:
        job = _lock_job(c, job_id)
        if job["status"] in UNCANCELABLE_JOB_STATUSES:
            raise Conflict(
                f"Job execution {job_id} is already {job['status']}",
                current_status=job["status"],
            )
        c.execute("cancel_job_execution", job_id=job_id, reason=reason)
        audit.record_event(
            c, actor, "job.canceled", "job", job_id, job_id=job_id,
            details={"from": job["status"], "force": force, "reason": reason},
        )
    canceled = sum(
        _cancel_rows_in_chunks(job_id, source, reason, chunk_rows)
        for source in states.sources_for(states.CANCELED, Actor.SERVER, force)
    )
    with db.connect() as c:
        rollup.snapshot_counters(c, job_id)
    enqueue.enqueue_nudge(settings, job_id, "canceled")
    log.info("job canceled job_id=%s force=%s devices=%d", job_id, force, canceled)
    return {"job": progress.get_execution(job_id), "canceled_devices": canceled}


def _cancel_rows_in_chunks(
    job_id: uuid.UUID, source: str, reason: str | None, chunk_rows: int
) -> int:
    canceled = 0
    after = FIRST_DEVICE_UUID
    while True:
        end = db.one(
            "device_job_chunk_end", job_id=job_id, status=source, after=after,
            chunk_size=chunk_rows,
        )
        until = end["device_uuid"] if end else None
        canceled += db.execute(
            "cancel_device_job_chunk", job_id=job_id, status=source, after=after, until=until,
            reason=reason,
        )
        if until is None:
            return canceled
        after = until


def cancel_device_job(
    job_id: uuid.UUID, device_uuid: uuid.UUID, actor: str, settings: Settings, *,
    force: bool = False, reason: str | None = None,
) -> dict:
    """Cancel one device's execution of a job (IN_PROGRESS only with force)."""
    with db.transaction() as c:
        row = device_jobs.lock_for_transition(
            c, job_id, device_uuid, states.CANCELED, Actor.SERVER, force=force,
        )
        if not row.is_repeat:
            audit.record_event(
                c, actor, "device_job.canceled", "device_job",
                device_jobs.device_job_target(job_id, device_uuid), job_id=job_id,
                device_uuid=device_uuid,
                details={"from": row.status, "force": force, "reason": reason},
            )
            stored = device_jobs.apply_transition(
                c, row, Actor.SERVER, force=force, reason=reason
            )
    if row.is_repeat:
        return device_jobs.get_device_job(job_id, device_uuid)
    rollup.finalize_if_complete(job_id)
    enqueue.enqueue_nudge(settings, job_id, "canceled", [device_uuid])
    return stored


def retry_execution(job_id: uuid.UUID, actor: str, settings: Settings) -> dict:
    """Re-queue every device whose latest row failed, timed out or was rejected."""
    with db.transaction() as c:
        job = _lock_retryable_job(c, job_id)
        requeued = _requeue(c, job_id, None)
        if requeued:
            audit.record_event(
                c, actor, "job.retried", "job", job_id, job_id=job_id,
                details={"from": job["status"], "devices": len(requeued)},
            )
    if requeued:
        enqueue.enqueue_nudge(settings, job_id, "queued")
    log.info("job retried job_id=%s devices=%d", job_id, len(requeued))
    return {"job": progress.get_execution(job_id), "retried_devices": len(requeued)}


def retry_device_job(
    job_id: uuid.UUID, device_uuid: uuid.UUID, actor: str, settings: Settings
) -> dict:
    """Re-queue one device's failed execution of a job with the next execution number."""
    with db.transaction() as c:
        _lock_retryable_job(c, job_id)
        requeued = _requeue(c, job_id, device_uuid)
        if not requeued:
            current = device_jobs.get_device_job(job_id, device_uuid)
            raise Conflict(
                f"Only a failed, timed-out or rejected execution can be retried; "
                f"this one is {current['status']}",
                current_status=current["status"],
            )
        audit.record_event(
            c, actor, "device_job.retried", "device_job",
            device_jobs.device_job_target(job_id, device_uuid), job_id=job_id,
            device_uuid=device_uuid, details={"execution_number": requeued[0]["execution_number"]},
        )
    enqueue.enqueue_nudge(settings, job_id, "queued", [device_uuid])
    return device_jobs.get_device_job(job_id, device_uuid)


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


def _requeue(conn: db.Connector, job_id: uuid.UUID, device_uuid: uuid.UUID | None) -> list[dict]:
    """Re-queue failed latest rows (one device's, or all) and reopen the job if any were."""
    requeued = conn.all(
        "requeue_failed_device_jobs", job_id=job_id, device_uuid=device_uuid,
        failures=sorted(states.FAILURES),
    )
    if requeued:
        conn.execute("reopen_job_execution", job_id=job_id)
    return requeued
