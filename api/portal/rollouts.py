"""Staged rollouts in the portal: the stage panel of an execution with the admins' Pause /
Resume / Promote / Approve, the stage rows of the execute form, and the rollouts waiting for a
person on the dashboard."""

from __future__ import annotations

import uuid

from flask import flash, redirect, url_for
from werkzeug.datastructures import MultiDict

from api.auth import actor
from api.effects import carried, settings
from api.portal import bp
from api.portal.forms import FieldErrors
from api.portal.sessions import admin_only
from dispatcher.errors import Conflict, Forbidden
from dispatcher.policies import rollout_control

ACTIONS = {
    "pause": rollout_control.pause_rollout,
    "resume": rollout_control.resume_rollout,
    "promote": rollout_control.promote_stage,
    "approve": rollout_control.approve_rollout,
}
STATE_WORDS = {
    "WAITING_FOR_APPROVAL": "Waiting for approval", "RUNNING": "Rolling out",
    "PAUSED": "Paused", "FINISHED": "Finished", "STOPPED": "Stopped",
}
# The execute form's preset: two canaries, then a tenth of the fleet, then the rest.
PRESET_ROWS = [
    {"name": "canary", "size": "2", "max_failure": "0", "soak_minutes": "", "after": "continue"},
    {"name": "ten-percent", "size": "10%", "max_failure": "5", "soak_minutes": "",
     "after": "continue"},
    {"name": "rest", "size": "", "max_failure": "", "soak_minutes": "", "after": "continue"},
]
ROW_FIELDS = ("name", "size", "max_failure", "soak_minutes", "after")
BLANK_ROWS = 3
WAITING_SHOWN = 10


@bp.route("/executions/<uuid:job_id>/rollout/<any(pause, resume, promote, approve):action>",
          methods=["POST"])
@admin_only
def rollout_action(job_id: uuid.UUID, action: str):
    try:
        shown = carried(ACTIONS[action](job_id, actor(), settings()))
    except (Conflict, Forbidden) as exc:
        flash(f"Not done: {exc.message}.", "bad")
    else:
        flash(f"{STATE_WORDS[shown['state']]}: {shown['reason']}.", "ok")
    return redirect(url_for("portal.execution", job_id=job_id))


def stage_panel(job: dict) -> dict | None:
    """What the stage panel of an execution shows; None for a job without stages."""
    if job.get("stages") is None:
        return None
    rollout = rollout_control.rollout(job["job_id"])
    if rollout is None:
        return None
    return {**rollout, "words": STATE_WORDS.get(rollout["state"], rollout["state"]),
            "actions": rollout_control.available_actions(rollout),
            "bars": [_as_counters(stage) for stage in rollout["stages"]]}


def _as_counters(stage: dict) -> dict:
    """A stage's numbers in the shape of a job's, for the progress bar."""
    counted = stage["succeeded"] + stage["failed"] + stage["in_progress"] + stage["queued"]
    return {"total_devices": stage["size"], "succeeded_devices": stage["succeeded"],
            "failed_devices": stage["failed"], "in_progress_devices": stage["in_progress"],
            "queued_devices": stage["queued"], "canceled_devices": stage["size"] - counted}


def waiting_for_a_person() -> list[dict]:
    return [{**row, "words": STATE_WORDS[row["rollout_state"]]}
            for row in rollout_control.rollouts_waiting(WAITING_SHOWN)]


def stage_rows(form: MultiDict) -> list[dict]:
    """The stage rows to show on the execute form: those submitted, else blank ones."""
    columns = {name: form.getlist(f"stage_{name}") for name in ROW_FIELDS}
    submitted = [dict(zip(ROW_FIELDS, values, strict=False))
                 for values in zip(*columns.values(), strict=False)]
    return submitted or [dict.fromkeys(ROW_FIELDS, "") for _ in range(BLANK_ROWS)]


def stage_fields(form: MultiDict, errors: FieldErrors) -> dict:
    """The ``stages`` and ``requires_approval`` of an execute request from the form's rows;
    rows without a name are left out."""
    fields: dict = {}
    stages = []
    for row in stage_rows(form):
        if not (row.get("name") or "").strip():
            continue
        stage: dict = {"name": row["name"].strip()}
        size = (row.get("size") or "").strip()
        gate: dict = {}
        try:
            if size.endswith("%"):
                stage["percent"] = float(size[:-1])
            elif size:
                stage["count"] = int(size)
            if (row.get("max_failure") or "").strip():
                gate["max_failure_percent"] = float(row["max_failure"])
            if (row.get("soak_minutes") or "").strip():
                gate["soak_seconds"] = int(float(row["soak_minutes"]) * 60)
        except ValueError:
            errors.setdefault("stages", []).append(
                f"Stage {stage['name']}: a size is a count (2) or a percent (10%), and "
                "failures and soak are numbers.")
            continue
        if row.get("after") == "pause":
            gate["on_success"] = "pause"
        if gate:
            stage["gate"] = gate
        stages.append(stage)
    if stages:
        fields["stages"] = stages
    if form.get("requires_approval") == "1":
        fields["requires_approval"] = True
    return fields
