"""The device side of a job: the poll for the next job, a device's history, and status reports.

A status report is one conditional UPDATE (``transition_device_job``) that applies the change
only while the row is in a source status the state table (``dispatcher.states``) allows, so two
reports racing on one row cannot both win. Counting is left to the database triggers; the job's
own status follows through ``dispatcher.rollup``.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from dispatcher import audit, db, policies, presence, rollup, states
from dispatcher.errors import Conflict, NotFound
from dispatcher.states import Actor

OUTPUT_FIELDS = ("stdout", "stderr")
REPORT_FIELDS = ("exit_code", "reason", "executed_steps", "failed_step")


@dataclass(frozen=True)
class TransitionResult:
    """What happened to a device's row: moved (``applied``) or already in the target status."""

    previous_status: str
    status: str
    version_number: int
    applied: bool


def next_job(device_uuid: uuid.UUID) -> dict | None:
    """The job a device should run now: its IN_PROGRESS one, else its oldest released QUEUED
    one (None when there is none)."""
    polled = db.one("poll_device_job", device_uuid=device_uuid, token_hash=None)
    return polled if polled is not None and polled["job_id"] is not None else None


def poll_next_job(device_uuid: uuid.UUID, token_hash: bytes | None) -> dict | None:
    """A device's poll: authentication and the lookup of its next job in one query.

    Answers None when ``token_hash`` is not the device's (or the device does not exist); else
    the device's next job (its IN_PROGRESS one, else its oldest released QUEUED one) with
    ``job_id`` None when there is none. ``token_hash`` None skips the token check.
    """
    polled = db.one("poll_device_job", device_uuid=device_uuid, token_hash=token_hash)
    if polled is not None:
        presence.poll_sightings.note(device_uuid)
    return polled


def list_device_jobs(
    device_uuid: uuid.UUID, status: str | None, limit: int, offset: int
) -> dict:
    """A page of a device's history, newest first (every execution number, with job names)."""
    rows = db.all(
        "list_device_jobs", device_uuid=device_uuid, status=status, limit=limit, offset=offset
    )
    if not rows and not db.one("device_exists", device_uuid=device_uuid)["found"]:
        raise NotFound(f"Device {device_uuid} not found")
    total = rows[0]["total"] if rows else 0
    for row in rows:
        del row["total"]
    return {"jobs": rows, "total": total, "limit": limit, "offset": offset}


def get_device_job(job_id: uuid.UUID, device_uuid: uuid.UUID) -> dict:
    """The latest row of a device for a job."""
    row = db.one("get_device_job", job_id=job_id, device_uuid=device_uuid)
    if row is None:
        raise NotFound(f"Device {device_uuid} has no job {job_id}")
    return row


def keep_tail(text: str | None, cap_bytes: int) -> tuple[str | None, bool | None]:
    """The last ``cap_bytes`` bytes of ``text`` (UTF-8, never a split character), and whether
    anything was cut. (None, None) when there is no text: the stored value is kept."""
    if text is None:
        return None, None
    raw = text.encode()
    if len(raw) <= cap_bytes:
        return text, False
    return raw[len(raw) - cap_bytes:].decode(errors="ignore"), True


def report_status(
    device_uuid: uuid.UUID, job_id: uuid.UUID, report: dict[str, Any], output_cap_bytes: int,
    actor: str,
) -> dict:
    """Apply a device's status report and return the row as stored.

    Raises NotFound when the device has no such job, Conflict (with ``current_status`` and
    ``version_number``) when the state table refuses the change or ``expected_version`` does
    not match. Repeating the terminal status the row already has changes nothing and succeeds.
    """
    target = report["status"]
    fields: dict[str, Any] = {name: report.get(name) for name in REPORT_FIELDS}
    for name in OUTPUT_FIELDS:
        fields[name], fields[f"{name}_truncated"] = keep_tail(report.get(name), output_cap_bytes)
    fields["status_details"] = db.jsonb(report.get("status_details"))
    with db.transaction() as c:
        result = transition(
            c, job_id, device_uuid, target, Actor.DEVICE,
            expected_version=report.get("expected_version"), **fields,
        )
        c.execute("touch_device_last_seen", device_uuid=device_uuid)
        if result.applied:
            audit.record_event(
                c, actor, "device_job.status_changed", "device_job",
                device_job_target(job_id, device_uuid), job_id=job_id, device_uuid=device_uuid,
                details={"from": result.previous_status, "to": target,
                         "version_number": result.version_number},
            )
            if result.previous_status == states.QUEUED:
                rollup.mark_job_started(c, job_id, actor)
            if target == states.IN_PROGRESS:
                policies.set_execution_timeout(
                    c, job_id, device_uuid, report.get("step_timeout_minutes"))
    if result.applied and target in states.TERMINAL:
        rollup.finalize_if_complete(job_id)
    return get_device_job(job_id, device_uuid)


def transition(
    conn: db.Connector, job_id: uuid.UUID, device_uuid: uuid.UUID, target: str, actor: Actor,
    *, force: bool = False, expected_version: int | None = None, **fields: Any,
) -> TransitionResult:
    """Move a device's latest row for a job to ``target`` in the caller's transaction.

    ``fields`` are the report's output columns (exit_code, stdout, …); those not given keep
    their stored value. See ``report_status`` for the errors.
    """
    columns = {
        name: fields.get(name)
        for name in (*REPORT_FIELDS, *OUTPUT_FIELDS, "stdout_truncated", "stderr_truncated",
                     "status_details")
    }
    row = conn.one(
        "transition_device_job", job_id=job_id, device_uuid=device_uuid, status=target,
        sources=states.sources_for(target, actor, force), expected_version=expected_version,
        starts=target != states.REJECTED and actor is Actor.DEVICE,
        terminal=target in states.TERMINAL, **columns,
    )
    if row is None:
        raise NotFound(f"Device {device_uuid} has no job {job_id}")
    current = row["previous_status"]
    if row["applied"]:
        return TransitionResult(current, row["status"], row["version_number"], applied=True)
    if current == target and target in states.TERMINAL:
        return TransitionResult(current, current, row["previous_version"], applied=False)
    conflict = {"current_status": current, "version_number": row["previous_version"]}
    if states.is_allowed(current, target, actor, force):
        raise Conflict(
            f"Version mismatch: expected {expected_version}, "
            f"current is {row['previous_version']}", **conflict,
        )
    if actor is Actor.SERVER and states.is_allowed(current, target, actor, force=True):
        raise Conflict(f"The device's job is {current}; use force to {target} it", **conflict)
    raise Conflict(f"Cannot change status from {current} to {target}", **conflict)


def device_job_target(job_id: uuid.UUID, device_uuid: uuid.UUID) -> str:
    """The audit-trail target id of one device's execution of one job."""
    return f"{job_id}/{device_uuid}"
