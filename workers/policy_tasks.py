"""Beat tasks of the execution policies: each runs one sweep at the current time, then does
what the sweep left to do (nudges, fan-outs, rollups). Every sweep is idempotent and safe to
run from two beats at once (see ``dispatcher.policy_sweeps``)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from celery import shared_task

from dispatcher import policy_sweeps, recurring
from dispatcher.policy_sweeps import Outcome
from workers.celery_app import settings
from workers.policy_schedule import (
    ABORT_TASK,
    END_JOBS_TASK,
    FIRE_RECURRING_TASK,
    RECONCILE_TASK,
    RELEASE_WAVES_TASK,
    RETRY_TASK,
    START_SCHEDULED_TASK,
    TIME_OUT_TASK,
    WINDOWS_TASK,
)


def _sweep(run: Callable[[datetime], Outcome]) -> int:
    outcome = run(datetime.now(UTC))
    policy_sweeps.carry_out(outcome, settings)
    return outcome.moved_rows + len(outcome.fan_outs)


@shared_task(name=START_SCHEDULED_TASK)
def start_scheduled_jobs() -> int:
    return _sweep(policy_sweeps.start_due_jobs)


@shared_task(name=FIRE_RECURRING_TASK)
def fire_recurring_runs() -> int:
    return _sweep(recurring.fire_due_runs)


@shared_task(name=RELEASE_WAVES_TASK)
def release_rollout_waves() -> int:
    return _sweep(policy_sweeps.release_waves)


@shared_task(name=TIME_OUT_TASK)
def time_out_overdue_executions() -> int:
    return _sweep(policy_sweeps.time_out_overdue)


@shared_task(name=END_JOBS_TASK)
def end_jobs_past_end_time() -> int:
    return _sweep(policy_sweeps.end_jobs_past_end_time)


@shared_task(name=ABORT_TASK)
def apply_abort_criteria() -> int:
    return _sweep(policy_sweeps.apply_abort_criteria)


@shared_task(name=RETRY_TASK)
def retry_failed_executions() -> int:
    return _sweep(policy_sweeps.retry_failed_rows)


@shared_task(name=WINDOWS_TASK)
def advance_maintenance_windows() -> int:
    return _sweep(policy_sweeps.advance_maintenance_windows)


@shared_task(name=RECONCILE_TASK)
def reconcile_continuous_jobs() -> int:
    return _sweep(policy_sweeps.reconcile_continuous)
