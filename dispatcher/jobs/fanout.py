"""Fan-out: expand an execution's target into one ``device_job_status`` row per device.

Each chunk is one transaction: lock the execution row, insert the next keyset page of devices
(``INSERT … SELECT … ORDER BY uuid LIMIT n ON CONFLICT DO NOTHING``), and move the cursor past
it. A fan-out killed at any point resumes from the last committed cursor, and a chunk that runs
twice inserts nothing the second time, so every device ends up with exactly one row.

The execution row lock serializes chunks with a cancel (which updates the same row before
touching device rows) and with a second copy of the task: a canceled job gets no new rows, and
two copies take turns advancing one cursor instead of racing.

The stalled fan-out sweep (``dispatcher.maintenance.stalled_fanouts``) sends again every
fan-out that did not finish and shows no sign of life: never sent because the broker was down,
or a worker that died mid-way.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Iterator

from dispatcher import audit, db, metrics
from dispatcher.jobs.targeting import target_of_execution
from dispatcher.outcome import Outcome
from dispatcher.policies import stages
from schemas.nudges import QUEUED_EVENT
from schemas.vocabulary import ENDED_JOB, FANOUT_DONE, FANOUT_PENDING, SCHEDULED

log = logging.getLogger(__name__)

FANOUT_ACTOR = "system:fanout"


def fan_out_job(job_id: uuid.UUID, chunk_size: int) -> Iterator[Outcome]:
    """Create the rows of ``job_id`` chunk by chunk, yielding after each chunk has committed
    what it leaves to do: nudge the chunk's devices ("queued"); ``moved_rows`` counts the rows
    it inserted.

    Safe to run any number of times, concurrently or after a crash.
    """
    started = time.monotonic()
    inserted_total = 0
    page_filter: dict | None = None  # the target, parsed from the job row once
    while True:
        chunk = _fan_out_chunk(job_id, chunk_size, page_filter)
        if chunk is None:
            return
        inserted, finished, page_filter = chunk
        inserted_total += len(inserted)
        outcome = Outcome(moved_rows=len(inserted))
        outcome.nudge(job_id, QUEUED_EVENT, inserted)
        if finished:
            metrics.record_fanout_duration(time.monotonic() - started)
            log.info("fanout done job_id=%s inserted_by_this_run=%d", job_id, inserted_total)
            # Devices may all have finished before the fan-out was marked DONE; their reports
            # could not complete the job then, so look once more now.
            outcome.may_have_completed.add(job_id)
        yield outcome
        if finished:
            return


def _fan_out_chunk(
    job_id: uuid.UUID, chunk_size: int, page_filter: dict | None
) -> tuple[list, bool, dict | None] | None:
    """One chunk in one transaction: (device uuids inserted, fan-out finished, the target's
    page filter for the next chunk), or None when there is nothing to do (unknown job, not
    started yet, or already done)."""
    with db.transaction() as c:
        job = c.one("fanout_lock_job", job_id=job_id)
        if job is None:
            log.warning("fanout skipped job_id=%s reason=unknown job", job_id)
            return None
        if job["fanout_status"] == FANOUT_DONE or job["status"] == SCHEDULED:
            return None
        if job["status"] in ENDED_JOB:
            _finish(c, job_id, cursor=None, stopped_by=job["status"])
            return [], True, page_filter
        if page_filter is None:
            page_filter = target_of_execution(job).page_filter()
        if job["stages"] is None:
            chunk = c.row_filtered(
                "fanout_insert_chunk", page_filter["slots"], job_id=job_id,
                cursor=job["fanout_cursor"], chunk_size=chunk_size,
                device_uuids=page_filter["device_uuids"],
            )
        else:
            chunk = _fan_out_staged_chunk(c, job, chunk_size, page_filter)
        finished = chunk["selected"] < chunk_size
        if finished:
            _finish(c, job_id, cursor=chunk["last_uuid"])
        else:
            c.execute("fanout_advance", job_id=job_id, cursor=chunk["last_uuid"])
    log.info("fanout chunk done job_id=%s rows=%d selected=%d", job_id, len(chunk["inserted"]),
             chunk["selected"])
    return chunk["inserted"], finished, page_filter


def _fan_out_staged_chunk(c: db.Connector, job: dict, chunk_size: int,
                          page_filter: dict) -> dict:
    """A staged job's chunk: its stages planned in the first one, each new row in its stage."""
    planned_released: list[uuid.UUID] = []
    if job["fanout_status"] == FANOUT_PENDING:
        planned_released = stages.plan_stages(c, job)
    chunk = c.row_filtered(
        "fanout_insert_staged_chunk", page_filter["slots"], job_id=job["job_id"],
        cursor=job["fanout_cursor"], chunk_size=chunk_size,
        device_uuids=page_filter["device_uuids"], **stages.staged_chunk_params(c, job),
    )
    return {**chunk, "inserted": planned_released + chunk["inserted"]}


def _finish(c: db.Connector, job_id: uuid.UUID, cursor: uuid.UUID | None,
            stopped_by: str | None = None) -> None:
    """Mark the fan-out DONE; total_devices becomes the number of rows it made."""
    total = c.row("fanout_finish", job_id=job_id, cursor=cursor)["total_devices"]
    details = {"total_devices": total}
    if stopped_by:
        details["stopped_by_job_status"] = stopped_by
    audit.record_event(c, FANOUT_ACTOR, "job.fanned_out", "job", job_id, job_id=job_id,
                       details=details)
    log.info("fanout finished job_id=%s total_devices=%d stopped_by=%s", job_id, total,
             stopped_by)

