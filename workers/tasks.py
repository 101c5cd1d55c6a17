"""The Celery tasks: each takes ids, calls one dispatcher function, and is idempotent."""

from __future__ import annotations

from celery import shared_task

from dispatcher import fanout, nudge
from dispatcher.enqueue import FAN_OUT_TASK, NUDGE_TASK, RESUME_FANOUTS_TASK
from workers.celery_app import settings


@shared_task(name=FAN_OUT_TASK)
def fan_out_job(job_id: str) -> int:
    """Create the job's device rows; rerunning it after a crash finishes what is left."""
    return fanout.fan_out_job(job_id, settings)


@shared_task(name=NUDGE_TASK)
def publish_job_nudges(job_id: str, event: str, device_uuids: list[str] | None = None) -> int:
    """Nudge devices over MQTT; a broker that is down skips the nudges, never fails the task."""
    return nudge.nudge_devices(settings, job_id, event, device_uuids)


@shared_task(name=RESUME_FANOUTS_TASK)
def resume_stalled_fanouts() -> int:
    """Enqueue again the fan-outs that stalled (broker down at execute, worker died)."""
    return len(fanout.resume_stalled_fanouts(settings))
