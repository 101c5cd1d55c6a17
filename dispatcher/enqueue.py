"""Sending work to the Celery workers by task name, so the API never imports the worker code.

An enqueue never raises: the broker being down must not fail the request that enqueues. The
work is durable in PostgreSQL first; a failed fan-out enqueue is picked up by the sweeper
(``dispatcher.jobs.fanout.resume_stalled_fanouts``), and a lost nudge only delays a device
until its next poll.
"""

from __future__ import annotations

import functools
import logging
import uuid

from celery import Celery

from dispatcher import db
from dispatcher.celery_config import FAN_OUT_TASK, NUDGE_TASK, RELEASE_STAGE_TASK, celery_config
from dispatcher.config import Settings

log = logging.getLogger(__name__)

NUDGE_EVENTS = ("queued", "canceled")
# One quick retry covers a pooled connection that went stale; a broker that is really down
# fails fast, and the request still answers.
PUBLISH_RETRY_POLICY = {"max_retries": 1, "interval_start": 0, "interval_step": 0.1,
                        "interval_max": 0.1}


@functools.lru_cache(maxsize=8)
def _producer(broker_url: str, key_prefix: str) -> Celery:
    settings = Settings(celery_broker_url=broker_url, celery_key_prefix=key_prefix)
    app = Celery("device-jobs-producer", set_as_current=False)
    app.conf.update(celery_config(settings))
    return app


def producer(settings: Settings) -> Celery:
    """A Celery app that only sends tasks (one per broker and key prefix, per process)."""
    return _producer(settings.celery_broker_url, settings.celery_key_prefix)


def _send(settings: Settings, task_name: str, args: list) -> bool:
    try:
        producer(settings).send_task(
            task_name, args=args, retry=True, retry_policy=PUBLISH_RETRY_POLICY
        )
    except Exception as exc:  # any broker failure: the caller's work is already durable
        log.warning("enqueue failed task=%s error=%s: %s", task_name, type(exc).__name__, exc)
        return False
    return True


def enqueue_fan_out(settings: Settings, job_id: uuid.UUID | str) -> bool:
    """Ask a worker to fan ``job_id`` out; record when, so the sweeper knows it was sent."""
    if not _send(settings, FAN_OUT_TASK, [str(job_id)]):
        log.warning("fan-out not enqueued job_id=%s; the sweeper will enqueue it", job_id)
        return False
    db.execute("mark_fanout_enqueued", job_id=job_id)
    return True


def enqueue_nudge(
    settings: Settings,
    job_id: uuid.UUID | str,
    event: str,
    device_uuids: list[uuid.UUID] | list[str] | None = None,
) -> bool:
    """Ask a worker to nudge devices about ``job_id`` over MQTT (a no-op with MQTT_URL unset).

    ``device_uuids`` None: the worker nudges every device of the job whose latest row is in the
    status the event is about (QUEUED for "queued", CANCELED for "canceled").
    """
    if event not in NUDGE_EVENTS:
        raise ValueError(f"unknown nudge event {event!r}; expected one of {NUDGE_EVENTS}")
    if not settings.mqtt_url:
        return False
    devices = None if device_uuids is None else [str(u) for u in device_uuids]
    if devices == []:
        return False
    return _send(settings, NUDGE_TASK, [str(job_id), event, devices])


def enqueue_stage_release(settings: Settings, job_id: uuid.UUID | str, stage: int) -> bool:
    """Ask a worker to release the held-back rows of a released stage; when the broker is down
    the gate sweep finds the release stalled and enqueues it again."""
    if not _send(settings, RELEASE_STAGE_TASK, [str(job_id), stage]):
        log.warning("stage release not enqueued job_id=%s stage=%d; the gate sweep will "
                    "enqueue it", job_id, stage)
        return False
    return True
