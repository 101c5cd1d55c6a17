"""An operator's hand on a staged rollout: pause, resume, promote, approve; and the rollout as
the API shows it.

Each action locks the job row (every rollout transition takes its turn there, see
``dispatcher.policies.gates``), checks that it applies to the rollout's state, else answers
Conflict with that state, and records its transition as a ``job_events`` row with the numbers
of the current stage. Releasing a stage enqueues the release of its rows after the commit; the
devices of a rollout that runs again are nudged.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable

from dispatcher import db
from dispatcher.config import Settings
from dispatcher.errors import Conflict, Forbidden, NotFound
from dispatcher.outcome import Decided, Outcome
from dispatcher.policies import gates
from schemas.nudges import QUEUED_EVENT
from schemas.vocabulary import (
    FINISHED,
    PAUSED,
    RUNNING,
    STAGE_FAILED,
    STAGE_PASSED,
    STAGE_PENDING,
    STAGE_PROMOTED,
    STAGE_RELEASED,
    WAITING_FOR_APPROVAL,
)

log = logging.getLogger(__name__)


def rollout(job_id: uuid.UUID) -> dict | None:
    """The rollout of a staged job: its state and why, its current stage, and each stage with
    its counters; None for a job without stages."""
    job = db.one("job_rollout", job_id=job_id)
    if job is None:
        raise NotFound(f"Job execution {job_id} not found")
    if job["configured_stages"] is None:
        return None
    planned = db.all("job_rollout_stages", job_id=job_id)
    if planned:
        shown = [_stage_view(row) for row in planned]
    else:  # not fanned out yet: the stages as configured, none planned
        shown = [{"name": s["name"], "size": 0, "state": STAGE_PENDING, "succeeded": 0,
                  "failed": 0, "in_progress": 0, "queued": 0, "released_at": None,
                  "finished_at": None, "soak_until": None}
                 for s in job["configured_stages"]]
    return {
        "state": job["rollout_state"],
        "reason": job["rollout_reason"] or _default_reason(job["rollout_state"]),
        "current_stage": job["current_stage"],
        "requires_approval": job["requires_approval"],
        "approved_by": job["approved_by"],
        "approved_at": job["approved_at"],
        "stages": shown,
    }


def _default_reason(state: str | None) -> str:
    if state == WAITING_FOR_APPROVAL:
        return "waiting for an admin to approve the job"
    return f"rollout {(state or 'not started').lower()}"


def _stage_view(row: dict) -> dict:
    return {
        "name": row["name"], "size": row["size"], "state": row["state"],
        "succeeded": row["succeeded"], "failed": row["failures"],
        "in_progress": row["in_progress"], "queued": row["queued"],
        "released_at": row["released_at"], "finished_at": row["finished_at"],
        "soak_until": row["soak_until"],
        "acknowledged_failures": row["acknowledged_failures"],
    }


def pause_rollout(job_id: uuid.UUID, actor: str, settings: Settings) -> Decided[dict]:
    """A running rollout pauses: nothing more is handed out; devices already running finish."""
    def pause(c: db.Connector, job: dict, numbers: dict | None) -> Outcome:
        _require(job, {RUNNING}, "pause")
        gates.set_rollout(c, job_id, PAUSED, f"paused by {actor}", actor,
                          _details(numbers) if numbers else {})
        return Outcome()
    return _act(job_id, actor, settings, pause)


def resume_rollout(job_id: uuid.UUID, actor: str, settings: Settings) -> Decided[dict]:
    """A paused rollout runs again. After a failed gate the stage stays FAILED, its failures
    are acknowledged and the next stage is released; after a passed gate (on_success: pause)
    the next stage is released; a stage paused by hand goes on."""
    def resume(c: db.Connector, job: dict, numbers: dict | None) -> Outcome:
        _require(job, {PAUSED}, "resume")
        details = _details(numbers) if numbers else {}
        stage = job["current_stage"]
        if numbers is not None and numbers["state"] == STAGE_FAILED:
            acknowledged = c.row("acknowledge_stage_failures", job_id=job_id,
                                 stage=stage)["acknowledged_failures"]
            details = {**details, "acknowledged_failures": acknowledged}
        if numbers is not None and numbers["state"] in (STAGE_FAILED, STAGE_PASSED):
            return _release_after(c, job_id, numbers, actor, f"resumed by {actor}", details)
        gates.set_rollout(c, job_id, RUNNING, f"resumed by {actor}", actor, details)
        return Outcome(gate_checks={job_id}, job_nudges={(job_id, QUEUED_EVENT)})
    return _act(job_id, actor, settings, resume)


def promote_stage(job_id: uuid.UUID, actor: str, settings: Settings) -> Decided[dict]:
    """The current stage passes now, whatever its gate says, and the next one is released."""
    def promote(c: db.Connector, job: dict, numbers: dict | None) -> Outcome:
        _require(job, {RUNNING, PAUSED}, "promote")
        if numbers is None or numbers["state"] not in (STAGE_RELEASED, STAGE_PASSED):
            raise _conflict(job, "promote", "its current stage is not being rolled out")
        if numbers["state"] == STAGE_RELEASED:
            c.row("finish_stage", job_id=job_id, stage=numbers["stage"], state=STAGE_PROMOTED,
                  from_states=[STAGE_RELEASED])
        return _release_after(c, job_id, numbers, actor, f"stage {numbers['name']} promoted "
                              f"by {actor}", _details(numbers), action="job.stage_promoted")
    return _act(job_id, actor, settings, promote)


def approve_rollout(job_id: uuid.UUID, actor: str, settings: Settings) -> Decided[dict]:
    """A job created with requires_approval starts: its first stage is released."""
    def approve(c: db.Connector, job: dict, numbers: dict | None) -> Outcome:
        _require(job, {WAITING_FOR_APPROVAL}, "approve")
        if settings.approval_by_other_admin and actor == job["creator"]:
            raise Forbidden(f"{actor} created job {job_id}; another admin must approve it "
                            "(APPROVAL_BY_OTHER_ADMIN)")
        reason = f"approved by {actor}"
        gates.set_rollout(c, job_id, RUNNING, reason, actor, {}, approved_by=actor,
                          action="job.rollout_approved")
        if not job["planned_stages"]:  # the fan-out releases the first stage when it plans
            return Outcome()
        return gates.release_next_stage(c, job_id, 0, numbers is not None
                                        and numbers["held_by_rate"], actor, reason)
    return _act(job_id, actor, settings, approve)


def _release_after(c: db.Connector, job_id: uuid.UUID, numbers: dict, actor: str, why: str,
                   details: dict, action: str = "job.rollout_resumed") -> Outcome:
    """The stage after the current one is released, or the rollout finishes at the last."""
    gates.set_rollout(c, job_id, RUNNING, why, actor, details, action=action)
    if numbers["is_last"]:
        gates.set_rollout(c, job_id, FINISHED, f"every stage is done; {why}", actor, details)
        return Outcome(job_nudges={(job_id, QUEUED_EVENT)})
    outcome = gates.release_next_stage(c, job_id, numbers["stage"] + 1, numbers["held_by_rate"],
                                       actor, why)
    outcome.job_nudges.add((job_id, QUEUED_EVENT))
    return outcome


Action = Callable[[db.Connector, dict, "dict | None"], Outcome]


def _act(job_id: uuid.UUID, actor: str, settings: Settings, action: Action) -> Decided[dict]:
    with db.transaction() as c:
        job = c.one("lock_rollout", job_id=job_id)
        if job is None:
            raise NotFound(f"Job execution {job_id} not found")
        if not job["staged"]:
            raise Conflict(f"Job execution {job_id} has no staged rollout",
                           current_status=job["status"], rollout_state=None)
        numbers = c.one("stage_gate_numbers", job_id=job_id)
        outcome = action(c, job, numbers)
    log.info("rollout action job_id=%s actor=%s action=%s", job_id, actor, action.__name__)
    shown = rollout(job_id)
    assert shown is not None
    return Decided(shown, outcome)


def _details(numbers: dict) -> dict:
    return {"stage": numbers["stage"], "name": numbers["name"], "size": numbers["size"],
            "succeeded": numbers["succeeded"], "failed": numbers["failures"],
            "in_progress": numbers["in_progress"], "queued": numbers["queued"]}


def _require(job: dict, states: set[str], action: str) -> None:
    if job["rollout_state"] not in states:
        raise _conflict(job, action, f"its rollout is {job['rollout_state']}")


def _conflict(job: dict, action: str, why: str) -> Conflict:
    return Conflict(f"Cannot {action} job {job['job_id']}: {why}",
                    current_status=job["status"], rollout_state=job["rollout_state"],
                    current_stage=job["current_stage"])


def rollouts_waiting(limit: int) -> list[dict]:
    """Live staged jobs whose rollout waits for a person: to approve it, or to look at why it
    paused; newest first."""
    return db.all("rollouts_waiting_for_a_person", limit=limit)


def available_actions(rollout: dict) -> list[str]:
    """The actions that apply to a rollout in its state now (what the buttons offer)."""
    state = rollout["state"]
    stages = rollout["stages"]
    current = stages[rollout["current_stage"]]["state"] if stages else STAGE_PENDING
    actions = []
    if state == WAITING_FOR_APPROVAL:
        actions.append("approve")
    if state == RUNNING:
        actions.append("pause")
    if state == PAUSED:
        actions.append("resume")
    if state in (RUNNING, PAUSED) and current in (STAGE_RELEASED, STAGE_PASSED):
        actions.append("promote")
    return actions
