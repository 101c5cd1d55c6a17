"""Where executions stand: the list, one execution with its devices, the per-device page, and
the live counters every answer carries.

The counters are the shards of ``job_status_counts`` summed (kept exact by triggers, see
``dispatcher.jobs.completion``); the per-device page of a big job is counted from them too,
never by counting rows.
"""

from __future__ import annotations

import uuid

from dispatcher import db
from dispatcher.errors import NotFound
from dispatcher.jobs.pins import handler_steps
from dispatcher.signing import signature_window
from schemas.vocabulary import DEVICE_STATUSES, FAILURES

# The execution detail shows this many devices; the rest are on the paged devices endpoint.
DETAIL_DEVICE_LIMIT = 100
# Each API counter and the device statuses it counts: one counter a status
# (``timed_out_devices`` for TIMED_OUT), except that failed_devices counts every failure (what
# makes a job FAILED), which timed_out_devices and rejected_devices break down.
COUNTERS: dict[str, frozenset[str]] = {
    **{f"{status.lower()}_devices": frozenset({status}) for status in DEVICE_STATUSES},
    "failed_devices": FAILURES,
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


def counters_for_jobs(job_ids: list[uuid.UUID]) -> dict[uuid.UUID, dict[str, int]]:
    """Live counters of several jobs, read in one query."""
    by_job: dict[uuid.UUID, dict[str, int]] = {job_id: {} for job_id in job_ids}
    for row in db.all("job_status_counts_for_jobs", job_ids=job_ids):
        by_job[row["job_id"]][row["status"]] = row["n"]
    return {job_id: counters_from_status_counts(counts) for job_id, counts in by_job.items()}


def list_executions(status: str | None, limit: int, offset: int) -> dict:
    """A page of executions, newest first, each with live counters."""
    page = db.page(
        "list_job_executions", "executions", "count_job_executions", limit=limit,
        offset=offset, status=status,
    )
    counters = counters_for_jobs([row["job_id"] for row in page["executions"]])
    for row in page["executions"]:
        row.update(counters[row["job_id"]])
    pruned = db.one("history_pruned_before")
    page["history_pruned_before"] = pruned["pruned_before"] if pruned else None
    return page


def get_execution(job_id: uuid.UUID) -> dict:
    """One execution with its document, targets and live counters."""
    job, _ = _execution_and_status_counts(job_id)
    return job


def require_execution(job_id: uuid.UUID) -> None:
    """NotFound unless the execution exists."""
    if db.one("job_execution_exists", job_id=job_id) is None:
        raise NotFound(f"Job execution {job_id} not found")


def list_job_events(job_id: uuid.UUID, limit: int, offset: int) -> dict:
    """A page of one job's audit trail: its own events and those of its devices' executions."""
    require_execution(job_id)
    return db.page(
        "list_job_events", "events", "count_job_events", limit=limit, offset=offset,
        job_id=job_id,
    )


def execution_detail(job_id: uuid.UUID) -> dict:
    """The seed's execution answer: the job, and its first devices with a pointer to the rest."""
    job, by_status = _execution_and_status_counts(job_id)
    page = _device_page(job_id, by_status, None, DETAIL_DEVICE_LIMIT, 0)
    return {
        "job": job,
        "device_statuses": page["device_statuses"],
        "device_statuses_total": page["total"],
    }


def list_execution_devices(
    job_id: uuid.UUID, status: str | None, limit: int, offset: int
) -> dict:
    """A page of the devices of an execution (their latest rows), by device uuid."""
    _, by_status = _execution_and_status_counts(job_id)
    return _device_page(job_id, by_status, status, limit, offset)


def _execution_and_status_counts(job_id: uuid.UUID) -> tuple[dict, dict[str, int]]:
    job = db.one("get_job_execution", job_id=job_id)
    if job is None:
        raise NotFound(f"Job execution {job_id} not found")
    by_status = status_counts(job_id)
    job.update(counters_from_status_counts(by_status))
    job["handler_steps"] = handler_steps(job["job_document"])
    job.update(signature_window(job.pop("signed_job")))
    return job, by_status


def _device_page(
    job_id: uuid.UUID, by_status: dict[str, int], status: str | None, limit: int, offset: int
) -> dict:
    rows = db.all(
        "list_execution_device_statuses", job_id=job_id, status=status, limit=limit,
        offset=offset,
    )
    total = sum(by_status.values()) if status is None else by_status.get(status, 0)
    return {"device_statuses": rows, "total": total, "limit": limit, "offset": offset}


def recent_job_events(job_id: uuid.UUID, limit: int) -> list[dict]:
    """The newest events of one job, newest first, without counting the rest (the portal's
    timeline of a job with many devices)."""
    return db.all("recent_job_events", job_id=job_id, limit=limit)


def executions_overview() -> dict:
    """The numbers on top of the executions dashboard: executions by status, and the devices
    of live executions by status. Both are read from indexes and the counter shards."""
    jobs = {row["status"]: row["n"] for row in db.all("count_executions_by_status")}
    devices = {row["status"]: row["n"] for row in db.all("live_job_device_counts")}
    return {"jobs_by_status": jobs, **counters_from_status_counts(devices)}


def search_execution_devices(
    job_id: uuid.UUID, name_contains: str, status: str | None, limit: int, offset: int
) -> dict:
    """A page of an execution's devices whose name contains ``name_contains`` (any case).

    Not counted: ``more`` says whether another page follows. A text of three characters or
    more is found in a trigram index of device names; a shorter one reads the devices in uuid
    order until the page is full (quick when many match, a scan of the fleet when none do)."""
    require_execution(job_id)
    rows = db.all("search_execution_devices", job_id=job_id, name_contains=name_contains,
                  status=status, limit=limit, offset=offset)
    return {"device_statuses": rows[:limit], "more": len(rows) > limit, "limit": limit,
            "offset": offset}
