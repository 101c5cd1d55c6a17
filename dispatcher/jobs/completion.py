"""Completing a job: SUCCEEDED or FAILED once every one of its devices has finished.

Counting: statement triggers on ``device_job_status`` keep ``job_status_counts`` (per job,
status and shard) exact in the same transaction as every row change, so a read of the summed
shards is exact at any moment; nothing here counts in Python.

Job status: QUEUED -> IN_PROGRESS happens inside the transaction of the first device report
that leaves QUEUED (in the ``report_device_job`` statement: a conditional UPDATE that
matches, and so locks, nothing once the job is IN_PROGRESS). IN_PROGRESS -> SUCCEEDED/FAILED is
``complete_if_done``, called *after* each terminal report (or cancel) has committed, and by the
fan-out once it has marked itself DONE.

Why this is exact without serializing reports on the job row: every report commits its row
and its counter delta together, and a READ COMMITTED statement that starts after a commit sees
it. So whichever report commits last sees every other report, and therefore zero pending rows.
``complete_if_done`` first reads the summed counters without any lock; only when they show zero
pending does it lock the job row, read the counters again (a new statement, so after any retry
that held the lock and queued rows again) and complete the job with one conditional UPDATE.
Reports that see pending rows never touch the job row; two callers that both see zero take
turns on the lock and the second finds the job already complete. The fan-out's own call covers
a last report that lands before the fan-out is marked DONE.
"""

from __future__ import annotations

import logging
import uuid

from dispatcher import audit, db
from schemas.vocabulary import ACTIVE_JOB

log = logging.getLogger(__name__)

SYSTEM_ACTOR = "system"


def complete_if_done(job_id: uuid.UUID) -> dict | None:
    """Complete the job when every device is terminal; return the completed job or None.

    Call it after the transaction that made a device terminal has committed (or after the
    fan-out is marked DONE). Cheap when the job is not complete: one read of the counters.
    """
    if db.row("job_pending_devices", job_id=job_id)["pending"] > 0:
        return None
    with db.transaction() as c:
        job = c.one("lock_job_execution", job_id=job_id)
        if job is None or job["status"] not in ACTIVE_JOB:
            return None
        done = c.one("complete_job", job_id=job_id)
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
