"""Execution policies of a new execution: template defaults, checks, and the stored columns.

A template's policies are defaults: each policy field the execute request gives replaces the
template's whole value for that field. The merged values are checked together
(``policy_combination_errors``), then stored on the execution in the transaction that creates it.

A job whose ``scheduling_config.start_time`` lies ahead, and every recurring parent, is created
SCHEDULED: it is not fanned out until beat starts it (or fires a run).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from marshmallow import ValidationError

from dispatcher import db, schedules
from dispatcher.changes import field_changes
from dispatcher.errors import InvalidInput
from schemas.policies import POLICY_FIELDS, ExecutionPolicies, policy_combination_errors

_SCHEMA = ExecutionPolicies()
SCHEDULED = "SCHEDULED"


def stored_policies(values: dict) -> dict[str, Any]:
    """The policy fields of loaded ``values`` as JSON-ready documents (times as ISO 8601)."""
    present = {name: values[name] for name in POLICY_FIELDS if values.get(name) is not None}
    return _SCHEMA.dump(present)


def loaded_policies(stored: dict) -> dict[str, Any]:
    """Stored policy documents (a template's columns) loaded back into Python values."""
    present = {name: stored[name] for name in POLICY_FIELDS if stored.get(name) is not None}
    try:
        return _SCHEMA.load(present)
    except ValidationError as exc:
        raise InvalidInput("Stored policies are not valid", errors=exc.messages) from exc


def merged_policies(template: dict | None, request: dict) -> dict[str, Any]:
    """The request's policy fields over the template's defaults."""
    merged = loaded_policies(template) if template else {}
    merged.update({name: request[name] for name in POLICY_FIELDS if name in request})
    return merged


def check_policies(values: dict, target_type: str) -> None:
    errors = policy_combination_errors(values, target_type)
    if errors:
        raise InvalidInput("Invalid request: " + ", ".join(sorted(errors)), errors=errors)


def policy_columns(values: dict, now: datetime, status: str) -> dict[str, Any]:
    """The job_executions columns the policies set, and the status the job starts in.

    ``status`` is the status the job would have without policies (QUEUED).
    """
    kind = values.get("execution_type") or "oneTime"
    scheduling = values.get("scheduling_config") or {}
    schedule = values.get("schedule")
    start, end = scheduling.get("start_time"), scheduling.get("end_time")
    next_run_at = None
    if kind == "recurring":
        ends = [t for t in (end, schedule.get("end_time")) if t]
        end = min(ends) if ends else None
        next_run_at = schedules.first_run_at(
            schedule["cron"], schedule["timezone"], max(start or now, now), end
        )
        if next_run_at is None:
            raise InvalidInput(
                "The schedule has no run before its end time",
                errors={"schedule": ["No cron slot falls before the end time."]},
            )
        status = SCHEDULED
    elif start and start > now:
        status = SCHEDULED
    window = None
    if scheduling.get("maintenance_windows"):
        window = schedules.current_or_next_window(
            scheduling["maintenance_windows"], now, scheduling.get("timezone", "UTC")
        )
    stored = stored_policies(values)
    return {
        "execution_type": kind,
        **{name: db.jsonb(stored.get(name)) for name in POLICY_FIELDS if name != "execution_type"},
        "start_at": start,
        "end_at": end,
        "end_behavior": scheduling.get("end_behavior") or ("STOP_ROLLOUT" if end else None),
        "next_run_at": next_run_at,
        "window_opens_at": window.opens_at if window else None,
        "window_closes_at": window.closes_at if window else None,
        "status": status,
    }


def apply_execution_policies(
    c: db.Connector, job_id: uuid.UUID, values: dict, now: datetime | None = None,
    status: str = "QUEUED",
) -> dict[str, Any]:
    """Store the policies on a just-inserted execution, in its transaction; return its
    ``status`` (QUEUED, or SCHEDULED: not to be fanned out now) and ``execution_type``."""
    columns = policy_columns(values, now or datetime.now(UTC), status)
    row = c.one("policy_set_columns", job_id=job_id, **columns)
    assert row is not None
    return row


def store_template_policies(
    c: db.Connector, template: dict, changes: dict
) -> tuple[dict[str, Any], dict[str, dict]]:
    """Set the policy fields given in ``changes`` as ``template``'s defaults, keeping the others;
    return the template's policies now and what changed (for the audit trail)."""
    current = {name: template.get(name) for name in POLICY_FIELDS}
    wanted = {**current, **stored_policies(changes)}
    diff = field_changes(current, wanted, POLICY_FIELDS)
    if diff:
        c.execute("policy_set_template_policies", id=template["id"], execution_type=wanted[
            "execution_type"], **{name: db.jsonb(wanted[name]) for name in POLICY_FIELDS
                                 if name != "execution_type"})
    return wanted, diff
