"""The audit trail: every create, update, delete and transition is a ``job_events`` row.

Callers pass the connector of the transaction that makes the change, so the change and its
event commit together or not at all.
"""

from __future__ import annotations

import uuid
from typing import Any

from dispatcher import db


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
