"""Recurring jobs: each cron slot of a parent becomes one run (a child execution).

Exactly once per slot: the parent row is locked with SKIP LOCKED while a slot is fired, and the
run is inserted under a unique (parent_job_id, scheduled_for) index, so two beats, two workers or
a redelivered task never create a second run for the same slot. Catch-up after an outage fires
once, for the latest missed slot (see ``dispatcher.policies.schedules``).
"""

from __future__ import annotations

import logging
import uuid
from datetime import datetime

from dispatcher import audit, db
from dispatcher.jobs import progress
from dispatcher.outcome import Outcome
from dispatcher.policies import POLICY_ACTOR, schedules
from schemas.vocabulary import SUCCEEDED

log = logging.getLogger(__name__)


def fire_due_runs(now: datetime, limit: int | None = None) -> Outcome:
    """Fire the due slot of every recurring parent; the new runs are to be fanned out."""
    outcome = Outcome()
    for row in db.all("due_recurring_jobs", now=now, limit=limit):
        run_job_id = _fire(row["job_id"], now)
        if run_job_id is not None:
            outcome.fan_outs.append(run_job_id)
    return outcome


def _fire(parent_job_id: uuid.UUID, now: datetime) -> uuid.UUID | None:
    with db.transaction() as c:
        parent = c.one("lock_recurring_job", job_id=parent_job_id, now=now)
        if parent is None:
            return None
        schedule = parent["schedule"]
        max_runs = schedule.get("max_runs")
        firing = schedules.plan_firing(
            schedule["cron"], schedule.get("timezone", "UTC"), parent["next_run_at"], now,
            end_time=parent["end_at"],
            runs_left=None if max_runs is None else max_runs - parent["run_count"],
        )
        run = None
        if firing.slot is not None:
            window = _window_at(parent["scheduling_config"], now)
            run = c.one(
                "insert_run", run_job_id=uuid.uuid4(), parent_job_id=parent_job_id,
                scheduled_for=firing.slot, total_devices=parent["total_devices"],
                window_opens_at=window.opens_at if window else None,
                window_closes_at=window.closes_at if window else None, now=now,
            )
        advanced = c.row(
            "advance_schedule", job_id=parent_job_id, next_run_at=firing.next_run_at,
            fired=1 if run else 0, now=now,
        )
        if run is not None:
            assert firing.slot is not None  # a run is inserted only for a slot
            audit.record_event(
                c, POLICY_ACTOR, "job.run_fired", "job", parent_job_id, job_id=parent_job_id,
                details={"run_job_id": str(run["job_id"]),
                         "scheduled_for": firing.slot.isoformat(),
                         "skipped_slots": firing.skipped_slots},
            )
            audit.record_event(
                c, POLICY_ACTOR, "job.created", "job", run["job_id"], job_id=run["job_id"],
                details={"parent_job_id": str(parent_job_id),
                         "scheduled_for": firing.slot.isoformat()},
            )
        if advanced["status"] == SUCCEEDED:
            audit.record_event(
                c, POLICY_ACTOR, "job.schedule_ended", "job", parent_job_id,
                job_id=parent_job_id, details={"runs": advanced["run_count"]},
            )
    if run is not None:
        log.info("recurring run fired parent_job_id=%s job_id=%s scheduled_for=%s skipped=%d",
                 parent_job_id, run["job_id"], run["scheduled_for"].isoformat(),
                 firing.skipped_slots)
        return run["job_id"]
    return None


def _window_at(scheduling_config: dict | None, now: datetime) -> schedules.Window | None:
    config = scheduling_config or {}
    if not config.get("maintenance_windows"):
        return None
    return schedules.current_or_next_window(
        config["maintenance_windows"], now, config.get("timezone", "UTC")
    )


def list_runs(parent_job_id: uuid.UUID, limit: int, offset: int) -> dict:
    """A page of the runs of a recurring parent, newest slot first."""
    progress.require_execution(parent_job_id)
    return db.page(
        "list_runs", "runs", "count_runs", limit=limit, offset=offset,
        parent_job_id=parent_job_id,
    )
