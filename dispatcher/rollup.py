"""A job's status and counters, rolled up from the statuses of its devices.

Counting: statement triggers on ``device_job_status`` keep ``job_status_counts`` (per job,
status and shard) exact in the same transaction as every row change, so a read of the summed
shards is exact at any moment; nothing here counts in Python.

Job status: QUEUED -> IN_PROGRESS happens inside the transaction of the first device report
that leaves QUEUED (in the ``report_device_job`` statement: a conditional UPDATE that
matches, and so locks, nothing once the job is IN_PROGRESS). IN_PROGRESS -> SUCCEEDED/FAILED is
``finalize_if_complete``, called *after* each terminal report (or cancel) has committed, and
by the fan-out once it has marked itself DONE.

Why this is exact without serializing reports on the job row: every report commits its row
and its counter delta together, and a READ COMMITTED statement that starts after a commit sees
it. So whichever report commits last sees every other report, and therefore zero pending rows.
``finalize_if_complete`` first reads the summed counters without any lock; only when they show
zero pending does it lock the job row, read the counters again (a new statement, so after any
retry that held the lock and re-queued rows) and complete the job with one conditional UPDATE.
Reports that see pending rows never touch the job row; two finalizers that both see zero take
turns on the lock and the second finds the job already complete. The fan-out's own call covers
a last report that lands before the fan-out is marked DONE.
"""

from __future__ import annotations

import logging
import uuid

from dispatcher import audit, db, states

log = logging.getLogger(__name__)

SYSTEM_ACTOR = "system"
# Job statuses that a device completing can still move to SUCCEEDED or FAILED.
ACTIVE_JOB_STATUSES = frozenset({"QUEUED", "IN_PROGRESS"})
# Each API counter and the device statuses it counts. failed_devices counts every failure
# (what makes a job FAILED); timed_out_devices and rejected_devices break it down.
COUNTERS: dict[str, frozenset[str]] = {
    "succeeded_devices": frozenset({states.SUCCEEDED}),
    "failed_devices": states.FAILURES,
    "in_progress_devices": frozenset({states.IN_PROGRESS}),
    "queued_devices": frozenset({states.QUEUED}),
    "canceled_devices": frozenset({states.CANCELED}),
    "timed_out_devices": frozenset({states.TIMED_OUT}),
    "rejected_devices": frozenset({states.REJECTED}),
    "removed_devices": frozenset({states.REMOVED}),
}


def counters_from_status_counts(by_status: dict[str, int]) -> dict[str, int]:
    """The API's ``*_devices`` counters from per-status counts."""
    return {
        name: sum(by_status.get(status, 0) for status in counted)
        for name, counted in COUNTERS.items()
    }


def status_counts(job_id: uuid.UUID) -> dict[str, int]:
    """How many latest rows of one job are in each status, exact at the moment of the read."""
    rows = db.all("job_status_counts_by_status", job_id=job_id)
    return {row["status"]: row["n"] for row in rows}


def job_counters(job_id: uuid.UUID) -> dict[str, int]:
    """Live ``*_devices`` counters of one job."""
    return counters_from_status_counts(status_counts(job_id))


def counters_for_jobs(job_ids: list[uuid.UUID]) -> dict[uuid.UUID, dict[str, int]]:
    """Live counters of several jobs, read in one query."""
    by_job: dict[uuid.UUID, dict[str, int]] = {job_id: {} for job_id in job_ids}
    for row in db.all("job_status_counts_for_jobs", job_ids=job_ids):
        by_job[row["job_id"]][row["status"]] = row["n"]
    return {job_id: counters_from_status_counts(counts) for job_id, counts in by_job.items()}


def finalize_if_complete(job_id: uuid.UUID) -> dict | None:
    """Complete the job when every device is terminal; return the completed job or None.

    Call it after the transaction that made a device terminal has committed (or after the
    fan-out is marked DONE). Cheap when the job is not complete: one read of the counters.
    """
    if db.one("job_pending_devices", job_id=job_id)["pending"] > 0:
        return None
    with db.transaction() as c:
        job = c.one("lock_job_execution", job_id=job_id)
        if job is None or job["status"] not in ACTIVE_JOB_STATUSES:
            return None
        done = c.one("finalize_job_if_complete", job_id=job_id)
        if done is None:
            return None
        audit.record_event(
            c, SYSTEM_ACTOR, "job.completed", "job", job_id, job_id=job_id,
            details={"status": done["status"], "succeeded_devices": done["succeeded_devices"],
                     "failed_devices": done["failed_devices"]},
        )
    log.info(
        "job completed job_id=%s status=%s succeeded=%d failed=%d",
        job_id, done["status"], done["succeeded_devices"], done["failed_devices"],
    )
    return done


def snapshot_counters(conn: db.Connector, job_id: uuid.UUID) -> None:
    """Write the job row's succeeded/failed counters from the live counts (on cancel)."""
    conn.execute("snapshot_job_counters", job_id=job_id)
