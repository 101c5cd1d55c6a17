"""Stage gates: when a released stage passed or failed, and what the rollout does then.

A gate is decided from the stage's counters (``job_stage_counts``, kept exact by triggers), so
deciding it reads a few counter rows, whatever the size of the stage:

- it fails as soon as failures (FAILED, TIMED_OUT, REJECTED), less those an operator
  acknowledged, exceed ``max_failure_percent`` of the stage once ``min_completed`` devices
  finished, without waiting for the rest; or when every device finished without enough success;
- it passes when SUCCEEDED reaches ``min_success_percent`` of the stage and ``soak_seconds``
  have passed since it did (the stage stays RELEASED meanwhile, with ``soak_until``);
- devices still pending ``stage_timeout_minutes`` after the release become TIMED_OUT first,
  so a silent device counts as a failure instead of holding the gate open;
- a stage without a gate passes when every device SUCCEEDED and fails on the first failure.

A passed gate releases the next stage (``on_success: continue``) or pauses the rollout
(``pause``); a failed one pauses it. The last stage passing finishes the rollout. Gates are
decided after each terminal report of a staged device has committed (as job completion is) and
by the gate sweep (``dispatcher.maintenance.stage_gates``); a decision reads the counters
without a lock and only a change takes the job row's lock, re-reads and decides again, so two
deciders never both act. Every transition is a ``job_events`` row with the numbers behind it.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from dispatcher import audit, db
from dispatcher.outcome import Outcome
from dispatcher.policies import POLICY_ACTOR, stages
from schemas.vocabulary import (
    ENDED_JOB,
    FINISHED,
    ON_SUCCESS_PAUSE,
    PAUSED,
    RUNNING,
    STAGE_FAILED,
    STAGE_PASSED,
    STAGE_RELEASED,
)

log = logging.getLogger(__name__)

TIMEOUT_CHUNK_ROWS = 5_000
STAGE_TIMEOUT_REASON = "no terminal status before the stage's timeout"
# A stage without a gate: every device must succeed, and the first failure fails it.
NO_GATE = {"min_completed": 0, "min_success_percent": 100.0, "max_failure_percent": 0.0,
           "soak_seconds": 0, "on_success": "continue"}

WAIT, SOAK, PASS, FAIL = "wait", "soak", "pass", "fail"


@dataclass(frozen=True)
class StageNumbers:
    """A stage's devices by what they did; ``size`` counts every device of the stage."""

    size: int
    queued: int
    in_progress: int
    succeeded: int
    failures: int

    @property
    def pending(self) -> int:
        return self.queued + self.in_progress

    @property
    def finished(self) -> int:
        return self.size - self.pending

    def as_details(self) -> dict:
        return {"size": self.size, "succeeded": self.succeeded, "failed": self.failures,
                "in_progress": self.in_progress, "queued": self.queued}


@dataclass(frozen=True)
class Verdict:
    kind: str  # WAIT, SOAK, PASS or FAIL
    reason: str = ""
    soak_until: datetime | None = None


def _percent(value: float) -> str:
    return f"{value:g}%"


def judge_stage(name: str, gate: dict | None, numbers: StageNumbers, acknowledged: int,
                soak_until: datetime | None, now: datetime) -> Verdict:
    """The gate's verdict on a released stage now."""
    gate = {**NO_GATE, **(gate or {})}
    size = numbers.size
    if size == 0:
        return Verdict(PASS, f"stage {name} has no devices")
    failures = max(0, numbers.failures - acknowledged)
    max_failure = gate["max_failure_percent"]
    if numbers.finished >= gate["min_completed"] and failures * 100 > max_failure * size:
        return Verdict(FAIL, f"gate failed: {failures} of {size} devices of stage {name} "
                             f"failed (> {_percent(max_failure)})")
    min_success = gate["min_success_percent"]
    if numbers.succeeded * 100 >= min_success * size:
        until = soak_until or now + timedelta(seconds=gate["soak_seconds"])
        if now >= until:
            return Verdict(PASS, f"stage {name} passed: {numbers.succeeded} of {size} devices "
                                 f"succeeded (>= {_percent(min_success)})")
        return Verdict(SOAK, f"stage {name} soaking until {until.isoformat()}", until)
    if numbers.pending == 0:
        return Verdict(FAIL, f"gate failed: only {numbers.succeeded} of {size} devices of "
                             f"stage {name} succeeded (< {_percent(min_success)})")
    return Verdict(WAIT)


def _numbers(row: dict) -> StageNumbers:
    return StageNumbers(row["size"], row["queued"], row["in_progress"], row["succeeded"],
                        row["failures"])


def _verdict(row: dict, now: datetime) -> Verdict:
    return judge_stage(row["name"], row["gate"], _numbers(row), row["acknowledged_failures"],
                       row["soak_until"], now)


def _decidable(row: dict | None) -> bool:
    return (row is not None and row["rollout_state"] == RUNNING
            and row["state"] == STAGE_RELEASED and row["fanout_status"] == "DONE")


def evaluate_gate(job_id: uuid.UUID, now: datetime, actor: str = POLICY_ACTOR) -> Outcome:
    """Decide the gate of a staged job's current stage now; cheap when nothing changes (one
    read of the stage's counters)."""
    row = db.one("stage_gate_numbers", job_id=job_id)
    if not _decidable(row):
        return Outcome()
    assert row is not None
    outcome = Outcome()
    if row["deadline_at"] is not None and row["deadline_at"] <= now and (
            row["queued"] or row["in_progress"]):
        outcome.merge(_time_out_stage(job_id, row["stage"]))
        row = db.one("stage_gate_numbers", job_id=job_id)
        assert row is not None
    verdict = _verdict(row, now)
    if verdict.kind == WAIT or (verdict.kind == SOAK and verdict.soak_until == row["soak_until"]):
        return outcome
    with db.transaction() as c:
        c.row("lock_rollout", job_id=job_id)
        row = c.one("stage_gate_numbers", job_id=job_id)
        if not _decidable(row):
            return outcome
        assert row is not None
        outcome.merge(_apply(c, row, _verdict(row, now), actor))
    return outcome


def _time_out_stage(job_id: uuid.UUID, stage: int) -> Outcome:
    """The stage's released devices still pending at its deadline become TIMED_OUT."""
    outcome = Outcome(may_have_completed={job_id})
    while True:
        moved = db.row("time_out_stage", job_id=job_id, stage=stage, chunk_size=TIMEOUT_CHUNK_ROWS,
                       reason=STAGE_TIMEOUT_REASON, actor=POLICY_ACTOR)["n"]
        outcome.moved_rows += moved
        if moved < TIMEOUT_CHUNK_ROWS:
            break
    log.info("stage timed out job_id=%s stage=%d devices=%d", job_id, stage, outcome.moved_rows)
    return outcome


def _apply(c: db.Connector, row: dict, verdict: Verdict, actor: str) -> Outcome:
    job_id, stage = row["job_id"], row["stage"]
    details = {"stage": stage, "name": row["name"], **_numbers(row).as_details(),
               "acknowledged_failures": row["acknowledged_failures"], "reason": verdict.reason}
    if verdict.kind == SOAK:
        c.execute("set_stage_soak", job_id=job_id, stage=stage, soak_until=verdict.soak_until)
        audit.record_event(c, actor, "job.stage_soaking", "job", job_id, job_id=job_id,
                           details={**details, "soak_until": verdict.soak_until.isoformat()
                                    if verdict.soak_until else None})
        return Outcome()
    if verdict.kind == FAIL:
        c.row("finish_stage", job_id=job_id, stage=stage, state=STAGE_FAILED,
              from_states=[STAGE_RELEASED])
        audit.record_event(c, actor, "job.stage_failed", "job", job_id, job_id=job_id,
                           details=details)
        # A job whose every device is done has nothing left to pause.
        ended = row["job_status"] in ENDED_JOB
        set_rollout(c, job_id, FINISHED if ended else PAUSED, verdict.reason, actor, details)
        log.info("stage gate failed job_id=%s stage=%d reason=%r", job_id, stage, verdict.reason)
        return Outcome()
    c.row("finish_stage", job_id=job_id, stage=stage, state=STAGE_PASSED,
          from_states=[STAGE_RELEASED])
    audit.record_event(c, actor, "job.stage_passed", "job", job_id, job_id=job_id,
                       details=details)
    log.info("stage gate passed job_id=%s stage=%d", job_id, stage)
    gate = {**NO_GATE, **(row["gate"] or {})}
    if row["is_last"]:
        set_rollout(c, job_id, FINISHED, f"every stage is done; {verdict.reason}", actor,
                    details)
        return Outcome()
    if gate["on_success"] == ON_SUCCESS_PAUSE:
        set_rollout(c, job_id, PAUSED, f"{verdict.reason}; paused before the next stage "
                    "(on_success: pause)", actor, details)
        return Outcome()
    return release_next_stage(c, job_id, stage + 1, row["held_by_rate"], actor,
                              verdict.reason)


def release_next_stage(c: db.Connector, job_id: uuid.UUID, stage: int, held_by_rate: bool,
                       actor: str, why: str) -> Outcome:
    """Release ``stage`` in the caller's transaction; the rollout runs. Its rows are released
    by a worker after the commit (or at the job's rate), and its devices nudged."""
    released = stages.mark_stage_released(c, job_id, stage, rows_released=held_by_rate)
    if released is None:
        return Outcome()
    reason = f"stage {released['name']} released ({why})"
    set_rollout(c, job_id, RUNNING, reason, actor,
                {"stage": stage, "name": released["name"], "because": why},
                action="job.stage_released")
    log.info("stage released job_id=%s stage=%d", job_id, stage)
    outcome = Outcome()
    if not held_by_rate:
        outcome.stage_releases.add((job_id, stage))
    return outcome


def set_rollout(c: db.Connector, job_id: uuid.UUID, state: str, reason: str, actor: str,
                details: dict, action: str | None = None, approved_by: str | None = None) -> None:
    """Move the rollout to ``state`` with its reason, recorded as ``action`` (by default
    job.rollout_<state>)."""
    c.execute("set_rollout_state", job_id=job_id, state=state, reason=reason,
              approved_by=approved_by)
    audit.record_event(c, actor, action or f"job.rollout_{state.lower()}", "job", job_id,
                       job_id=job_id, details={**details, "state": state, "reason": reason})


def gates_due(limit: int) -> list[uuid.UUID]:
    """Staged jobs with a released stage whose rollout runs."""
    return [row["job_id"] for row in db.all("stage_gates_due", limit=limit)]
