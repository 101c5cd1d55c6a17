"""The beat schedule: every periodic task, declared here and nowhere else."""

from __future__ import annotations

from dispatcher.config import Settings
from dispatcher.enqueue import RESUME_FANOUTS_TASK
from workers.policy_schedule import policy_beat_schedule


def beat_schedule(settings: Settings) -> dict:
    return {
        "resume-stalled-fanouts": {
            "task": RESUME_FANOUTS_TASK,
            "schedule": float(settings.fanout_sweep_interval_s),
        },
        **policy_beat_schedule(settings),
    }
