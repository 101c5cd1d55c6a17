"""The execution-policy entries of the beat schedule (merged into ``workers.beat``)."""

from __future__ import annotations

from dispatcher.config import Settings

START_SCHEDULED_TASK = "maintenance.start_scheduled_jobs"
FIRE_RECURRING_TASK = "maintenance.fire_recurring_runs"
RELEASE_WAVES_TASK = "maintenance.release_rollout_waves"
TIME_OUT_TASK = "maintenance.time_out_overdue_executions"
END_JOBS_TASK = "maintenance.end_jobs_past_end_time"
ABORT_TASK = "maintenance.apply_abort_criteria"
RETRY_TASK = "maintenance.retry_failed_executions"
WINDOWS_TASK = "maintenance.advance_maintenance_windows"
RECONCILE_TASK = "maintenance.reconcile_continuous_jobs"

FREQUENT_SWEEPS = (
    START_SCHEDULED_TASK, FIRE_RECURRING_TASK, RELEASE_WAVES_TASK, TIME_OUT_TASK,
    END_JOBS_TASK, ABORT_TASK, RETRY_TASK, WINDOWS_TASK,
)


def policy_beat_schedule(settings: Settings) -> dict:
    # A sweep that outlives its period is not worth queueing twice: expire the extra copy.
    period_s = float(settings.policy_sweep_interval_s)
    schedule = {
        name.removeprefix("maintenance.").replace("_", "-"): {
            "task": name, "schedule": period_s, "options": {"expires": period_s},
        }
        for name in FREQUENT_SWEEPS
    }
    reconcile_s = float(settings.continuous_reconcile_interval_s)
    schedule["reconcile-continuous-jobs"] = {
        "task": RECONCILE_TASK, "schedule": reconcile_s, "options": {"expires": reconcile_s},
    }
    return schedule
