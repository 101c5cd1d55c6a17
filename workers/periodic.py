"""The periodic work: a Celery task and a beat entry for every sweep of ``dispatcher.maintenance``.

Each task runs its sweep at the current time and carries out what it left to do (nudges,
fan-outs, completions). Every sweep is idempotent and safe to run from two beats at once; a
copy queued while the previous one still runs expires after one period rather than piling up.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from celery import shared_task

from dispatcher.config import Settings
from dispatcher.maintenance import SWEEPS
from dispatcher.maintenance.sweep import Sweep
from dispatcher.sender import carry_out


def run_sweep(sweep: Sweep, settings: Settings) -> int:
    """Run a sweep now and carry out its outcome; answer how much it moved."""
    outcome = sweep.run(datetime.now(UTC), settings)
    carry_out(outcome, settings)
    return outcome.moved_rows + len(outcome.fan_outs)


def beat_schedule(settings: Settings) -> dict:
    """The beat schedule: every sweep, at its interval."""
    schedule = {}
    for sweep in SWEEPS:
        period_s = sweep.interval_s(settings)
        schedule[sweep.beat_name] = {
            "task": sweep.task_name, "schedule": period_s, "options": {"expires": period_s},
        }
    return schedule


def register_tasks(settings: Settings) -> dict[str, Callable[[], int]]:
    """A Celery task for every sweep, by task name."""
    tasks = {}
    for sweep in SWEEPS:
        def run(sweep: Sweep = sweep) -> int:
            return run_sweep(sweep, settings)

        run.__name__ = run.__qualname__ = sweep.beat_name.replace("-", "_")
        run.__doc__ = sweep.run.__doc__
        tasks[sweep.task_name] = shared_task(name=sweep.task_name)(run)
    return tasks
