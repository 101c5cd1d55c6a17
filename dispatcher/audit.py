"""The audit trail: every create, update, delete and transition is a ``job_events`` row.

Callers pass the connector of the transaction that makes the change, so the change and its
event commit together or not at all.
"""

from __future__ import annotations

import uuid
from typing import Any

from dispatcher import db
from dispatcher.errors import NotFound


def record_event(
    conn: db.Connector,
    actor: str,
    action: str,
    target_type: str,
    target_id: object,
    *,
    job_id: uuid.UUID | str | None = None,
    device_uuid: uuid.UUID | str | None = None,
    details: dict[str, Any] | None = None,
) -> None:
    conn.execute(
        "insert_job_event",
        actor=actor,
        action=action,
        target_type=target_type,
        target_id=str(target_id),
        job_id=job_id,
        device_uuid=device_uuid,
        details=db.jsonb(details),
    )


def list_target_events(target_type: str, target_id: object, limit: int, offset: int) -> dict:
    """A page of the audit trail of one thing, oldest first."""
    return db.page(
        "list_target_events", "events", "count_target_events", limit=limit, offset=offset,
        target_type=target_type, target_id=str(target_id),
    )


def list_job_events(job_id: uuid.UUID, limit: int, offset: int) -> dict:
    """A page of one job's audit trail: its own events and those of its devices' executions."""
    if db.one("get_job_execution", job_id=job_id) is None:
        raise NotFound(f"Job execution {job_id} not found")
    return db.page(
        "list_job_events", "events", "count_job_events", limit=limit, offset=offset,
        job_id=job_id,
    )
