"""The Celery tasks: each takes ids, calls one dispatcher function, and is idempotent. The
periodic ones are made from the table in ``workers.periodic``."""

from __future__ import annotations

import uuid

from celery import shared_task

from dispatcher import nudges
from dispatcher.jobs import fanout
from dispatcher.sender import FAN_OUT_TASK, NUDGE_TASK, carry_out
from workers.celery_app import settings
from workers.periodic import register_tasks


@shared_task(name=FAN_OUT_TASK)
def fan_out_job(job_id: str) -> int:
    """Create the job's device rows, nudging each chunk's devices; rerunning it after a crash
    finishes what is left. Answers how many rows this run inserted."""
    inserted = 0
    for outcome in fanout.fan_out_job(uuid.UUID(job_id), settings.fanout_chunk_size):
        carry_out(outcome, settings)
        inserted += outcome.moved_rows
    return inserted


@shared_task(name=NUDGE_TASK)
def publish_job_nudges(job_id: str, event: str, device_uuids: list[str] | None = None) -> int:
    """Nudge devices over MQTT; a broker that is down skips the nudges, never fails the task."""
    return nudges.nudge_devices(settings, job_id, event, device_uuids)


PERIODIC_TASKS = register_tasks(settings)
