"""The periodic work: one table of sweeps, from which both the Celery tasks and the beat
schedule are made.

Each row names a sweep (a function of the current time that returns an ``Outcome``), the
setting that says how often beat runs it, and any setting it takes. Its task is named after it
(``maintenance.<sweep>``), runs it at the current time and carries out what it left to do
(nudges, fan-outs, completions). Every sweep is idempotent and safe to run from two beats at
once (see ``dispatcher.policies``); a copy queued while the previous one still runs expires
after one period rather than piling up.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

from celery import shared_task

from dispatcher import devices
from dispatcher.celery_config import periodic_task_name
from dispatcher.config import Settings
from dispatcher.jobs import fanout
from dispatcher.jobs.outcome import Outcome, carry_out
from dispatcher.maintenance import stage_gates
from dispatcher.policies import abort, continuous, recurring, retries, rollout, sweeps


@dataclass(frozen=True)
class Periodic:
    sweep: Callable[..., Outcome]
    interval_setting: str  # the Settings field: seconds between runs
    # Keyword arguments of the sweep taken from Settings: argument -> Settings field.
    setting_arguments: Mapping[str, str] = field(default_factory=dict)

    @property
    def task_name(self) -> str:
        return periodic_task_name(self.sweep.__name__)

    def interval_s(self, settings: Settings) -> float:
        return float(getattr(settings, self.interval_setting))

    def run(self, settings: Settings) -> int:
        """Run the sweep now and carry out its outcome; answer how much it moved."""
        arguments = {name: getattr(settings, setting)
                     for name, setting in self.setting_arguments.items()}
        outcome = self.sweep(datetime.now(UTC), **arguments)
        carry_out(outcome, settings)
        return outcome.moved_rows + len(outcome.fan_outs)


PERIODIC_WORK: tuple[Periodic, ...] = (
    Periodic(fanout.resume_stalled_fanouts, "fanout_sweep_interval_s",
             {"stalled_after_s": "fanout_stalled_after_s"}),
    Periodic(sweeps.start_due_jobs, "policy_sweep_interval_s"),
    Periodic(recurring.fire_due_runs, "policy_sweep_interval_s"),
    Periodic(rollout.release_waves, "policy_sweep_interval_s"),
    Periodic(sweeps.time_out_overdue, "policy_sweep_interval_s"),
    Periodic(sweeps.end_jobs_past_end_time, "policy_sweep_interval_s"),
    Periodic(abort.apply_abort_criteria, "policy_sweep_interval_s"),
    Periodic(retries.retry_failed_rows, "policy_sweep_interval_s"),
    Periodic(sweeps.advance_maintenance_windows, "policy_sweep_interval_s"),
    Periodic(stage_gates.decide_stage_gates, stage_gates.INTERVAL_SETTING),
    Periodic(continuous.reconcile_continuous, "continuous_reconcile_interval_s"),
    Periodic(devices.count_fleet, "fleet_count_interval_s",
             {"online_within_s": "device_online_within_s"}),
)


def beat_schedule(settings: Settings) -> dict:
    """The beat schedule: every row of ``PERIODIC_WORK``, at its interval."""
    schedule = {}
    for work in PERIODIC_WORK:
        period_s = work.interval_s(settings)
        schedule[work.sweep.__name__.replace("_", "-")] = {
            "task": work.task_name, "schedule": period_s, "options": {"expires": period_s},
        }
    return schedule


def register_tasks(settings: Settings) -> dict[str, Callable[[], int]]:
    """A Celery task for every row of ``PERIODIC_WORK``, by task name."""
    tasks = {}
    for work in PERIODIC_WORK:
        def run(work: Periodic = work) -> int:
            return work.run(settings)

        run.__name__ = run.__qualname__ = work.sweep.__name__
        run.__doc__ = work.sweep.__doc__
        tasks[work.task_name] = shared_task(name=work.task_name)(run)
    return tasks
