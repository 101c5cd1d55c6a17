"""Where executions stand: the list, one execution with its devices, and the per-device page.

Every answer carries live counters from ``dispatcher.rollup``; the per-device page of a big job
is counted from the same counters, never by counting rows.
"""

from __future__ import annotations

import uuid

from dispatcher import db, rollup
from dispatcher.errors import NotFound

# The execution detail shows this many devices; the rest are on the paged devices endpoint.
DETAIL_DEVICE_LIMIT = 100


def list_executions(status: str | None, limit: int, offset: int) -> dict:
    """A page of executions, newest first, each with live counters."""
    page = db.page(
        "list_job_executions", "executions", "count_job_executions", limit=limit,
        offset=offset, status=status,
    )
    counters = rollup.counters_for_jobs([row["job_id"] for row in page["executions"]])
    for row in page["executions"]:
        row.update(counters[row["job_id"]])
    return page


def get_execution(job_id: uuid.UUID) -> dict:
    """One execution with its document, targets and live counters."""
    job, _ = _execution_and_status_counts(job_id)
    return job


def execution_detail(job_id: uuid.UUID) -> dict:
    """The seed's execution answer: the job, and its first devices with a pointer to the rest."""
    job, by_status = _execution_and_status_counts(job_id)
    page = _device_page(job_id, by_status, None, DETAIL_DEVICE_LIMIT, 0)
    return {
        "job": job,
        "device_statuses": page["device_statuses"],
        "device_statuses_total": page["total"],
        "device_statuses_url": f"/api/v1/jobs/executions/{job_id}/devices",
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
    by_status = rollup.status_counts(job_id)
    job.update(rollup.counters_from_status_counts(by_status))
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
