"""The Celery tasks: each takes ids, calls one dispatcher function, and is idempotent. The
periodic ones are made from the table in ``workers.periodic``."""

from __future__ import annotations

import uuid
from collections.abc import Iterable

from celery import shared_task

from dispatcher import nudges
from dispatcher.jobs import fanout
from dispatcher.outcome import Outcome
from dispatcher.policies import stages
from dispatcher.sender import FAN_OUT_TASK, NUDGE_TASK, RELEASE_STAGE_TASK, carry_out
from workers.celery_app import settings
from workers.periodic import register_tasks


@shared_task(name=FAN_OUT_TASK)
def fan_out_job(job_id: str) -> int:
    """Create the job's device rows, nudging each chunk's devices; rerunning it after a crash
    finishes what is left. Answers how many rows this run inserted."""
    return _carried_out(fanout.fan_out_job(uuid.UUID(job_id), settings.fanout_chunk_size))


@shared_task(name=NUDGE_TASK)
def publish_job_nudges(job_id: str, event: str, device_uuids: list[str] | None = None) -> int:
    """Nudge devices over MQTT; a broker that is down skips the nudges, never fails the task."""
    return nudges.nudge_devices(settings, job_id, event, device_uuids)


@shared_task(name=RELEASE_STAGE_TASK)
def release_stage(job_id: str, stage: int) -> int:
    """Release a released stage's held-back rows; rerunning it releases only what is left."""
    return _carried_out(stages.release_stage_rows(uuid.UUID(job_id), stage,
                                                settings.fanout_chunk_size))



def _carried_out(outcomes: Iterable[Outcome]) -> int:
    """Carry out each chunk's outcome as soon as its chunk has committed; answer the rows moved."""
    moved = 0
    for outcome in outcomes:
        carry_out(outcome, settings)
        moved += outcome.moved_rows
    return moved


PERIODIC_TASKS = register_tasks(settings)
