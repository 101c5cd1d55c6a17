"""The policy fields of an execution or a template, as the columns they are stored in.

A template's policies are defaults: each policy field the execute request gives replaces the
template's whole value for that field. The merged values are checked together, once
(``check_policies``), and become columns of the execution's row when it is inserted.

A job whose ``scheduling_config.start_time`` lies ahead, and every recurring parent, is created
SCHEDULED: it is not fanned out until beat starts it (or fires a run).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from marshmallow import ValidationError

from dispatcher import db
from dispatcher.changes import field_changes
from dispatcher.errors import InvalidInput
from dispatcher.policies import schedules
from schemas.policies import POLICY_FIELDS, ExecutionPolicies, policy_combination_errors
from schemas.vocabulary import (
    FANOUT_DONE,
    FANOUT_PENDING,
    ONE_TIME,
    QUEUED,
    RECURRING,
    SCHEDULED,
    STOP_ROLLOUT,
)

_SCHEMA = ExecutionPolicies()
# A recurring parent is never fanned out itself: each of its runs is.


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
        raise InvalidInput("Stored policies are not valid", errors=exc.messages_dict) from exc


def merged_policies(template: dict | None, request: dict) -> dict[str, Any]:
    """The request's policy fields over the template's defaults."""
    merged = loaded_policies(template) if template else {}
    merged.update({name: request[name] for name in POLICY_FIELDS if name in request})
    return merged


def check_policies(values: dict, target_type: str) -> None:
    """Refuse policy values that clash with each other or with the target."""
    errors = policy_combination_errors(values, target_type)
    if errors:
        raise InvalidInput("Invalid request: " + ", ".join(sorted(errors)), errors=errors)


def policy_document_columns(values: dict) -> dict[str, Any]:
    """The policy fields as their jsonb columns (``execution_type`` as text), None when unset."""
    stored = stored_policies(values)
    return {
        name: stored.get(name) if name == "execution_type" else db.jsonb(stored.get(name))
        for name in POLICY_FIELDS
    }


def execution_columns(values: dict, now: datetime) -> dict[str, Any]:
    """Every job_executions column the policies decide, including the status the job starts in
    (QUEUED, or SCHEDULED: not to be fanned out now) and its fan-out status."""
    kind = values.get("execution_type") or ONE_TIME
    scheduling = values.get("scheduling_config") or {}
    schedule = values.get("schedule") or {}
    start, end = scheduling.get("start_time"), scheduling.get("end_time")
    status = QUEUED
    next_run_at = None
    if kind == RECURRING:
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
    return {
        **policy_document_columns(values),
        "execution_type": kind,
        "start_at": start,
        "end_at": end,
        "end_behavior": scheduling.get("end_behavior") or (STOP_ROLLOUT if end else None),
        "next_run_at": next_run_at,
        "window_opens_at": window.opens_at if window else None,
        "window_closes_at": window.closes_at if window else None,
        "status": status,
        "fanout_status": FANOUT_DONE if kind == RECURRING else FANOUT_PENDING,
    }


def store_template_policies(
    c: db.Connector, template: dict, changes: dict
) -> tuple[dict[str, Any], dict[str, dict]]:
    """Set the policy fields given in ``changes`` as ``template``'s defaults, keeping the others;
    return the template's policies now and what changed (for the audit trail)."""
    current = {name: template.get(name) for name in POLICY_FIELDS}
    wanted = {**current, **stored_policies(changes)}
    diff = field_changes(current, wanted, POLICY_FIELDS)
    if diff:
        c.execute("set_template_policies", id=template["id"], **{
            name: wanted[name] if name == "execution_type" else db.jsonb(wanted[name])
            for name in POLICY_FIELDS
        })
    return wanted, diff
