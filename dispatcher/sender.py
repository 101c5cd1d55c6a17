"""The one way out of the domain: carrying out an ``Outcome`` after its change has committed.

Domain functions decide and return an ``Outcome`` (``dispatcher.outcome``); the adapters (API
views, worker tasks, commands) hand it to ``carry_out`` here, and only here is work sent on:
fan-outs and nudges go to the Celery workers by task name, and jobs whose last device may have
finished are checked for completion. This is the only module of the domain that imports Celery
or kombu; the workers' app (``workers/celery_app.py``) loads the same configuration, so queue
names, routes, key prefix and delivery guarantees are written once. A task's name prefix picks
its queue, so a new task is routed by naming it.

Sending never raises: the broker being down must not fail the request that sends. The work is
durable in PostgreSQL first; a fan-out that was not sent is picked up by the stalled fan-out
sweep (``dispatcher.maintenance.stalled_fanouts``), and a lost nudge only delays a device until
its next poll. Tests record what would be sent with a ``RecordingSender``.
"""

from __future__ import annotations

import functools
import logging
import uuid
from datetime import UTC, datetime
from typing import Protocol

from celery import Celery
from kombu import Exchange, Queue

from dispatcher import db
from dispatcher.config import Settings
from dispatcher.fleet import broker_identities
from dispatcher.jobs import completion
from dispatcher.outcome import Decided, Outcome, T
from dispatcher.policies import gates
from schemas.nudges import NUDGE_EVENTS

log = logging.getLogger(__name__)

FANOUT_QUEUE = "fanout"
NUDGES_QUEUE = "nudges"
MAINTENANCE_QUEUE = "maintenance"
QUEUES = (FANOUT_QUEUE, NUDGES_QUEUE, MAINTENANCE_QUEUE)
TASK_ROUTES = {f"{queue}.*": {"queue": queue} for queue in QUEUES}

FAN_OUT_TASK = f"{FANOUT_QUEUE}.fan_out_job"
NUDGE_TASK = f"{NUDGES_QUEUE}.publish_job_nudges"
# Releasing a stage's rows is fan-out work: chunks of set-based writes to device rows.
RELEASE_STAGE_TASK = f"{FANOUT_QUEUE}.release_stage"

BROKER_CONNECT_TIMEOUT_S = 2.0
BROKER_SOCKET_TIMEOUT_S = 10.0


def is_amqp(broker_url: str) -> bool:
    """Whether the broker is RabbitMQ (an AMQP URL) rather than Redis."""
    return broker_url.split("://", 1)[0] in ("amqp", "amqps", "pyamqp")


def task_queues(settings: Settings) -> list[Queue]:
    """The task queues, durable on either broker.

    Each queue has its own exchange and key: a bare Queue(name) would bind every queue to the
    default exchange and key, and each message would land in all of them. With
    CELERY_QUORUM_QUEUES on RabbitMQ they are quorum queues on topic exchanges: Celery then
    turns global QoS off (quorum queues have none; the prefetch limit is per consumer) and
    delivers countdown/ETA tasks through its native delayed-delivery exchanges, which need
    topic exchanges (routing by the queue's name as the key works the same as direct).
    """
    if settings.celery_quorum_queues and is_amqp(settings.celery_broker_url):
        return [Queue(name, Exchange(name, type="topic"), routing_key=name,
                      queue_arguments={"x-queue-type": "quorum"}) for name in QUEUES]
    return [Queue(name, Exchange(name), routing_key=name) for name in QUEUES]


def broker_transport_options(settings: Settings) -> dict:
    if is_amqp(settings.celery_broker_url):
        # Publisher confirms: a send returns once RabbitMQ has the task, so an execute that
        # answered "sent" cannot lose its fan-out in a broker crash the next moment.
        return {"confirm_publish": True}
    options: dict = {
        "socket_connect_timeout": BROKER_CONNECT_TIMEOUT_S,
        "socket_timeout": BROKER_SOCKET_TIMEOUT_S,
    }
    if settings.celery_key_prefix:
        options["global_keyprefix"] = settings.celery_key_prefix
    return options


def celery_config(settings: Settings) -> dict:
    """The Celery configuration of this deployment, as a plain mapping."""
    return {
        "broker_url": settings.celery_broker_url,
        "broker_transport_options": broker_transport_options(settings),
        # Connecting to RabbitMQ (Redis has its socket_connect_timeout above).
        "broker_connection_timeout": BROKER_CONNECT_TIMEOUT_S,
        "broker_connection_retry_on_startup": True,
        # A worker outlives any broker outage: it retries for ever (Celery's default gives up
        # after 100 attempts, about fifty minutes, and the worker exits).
        "broker_connection_retry": True,
        "broker_connection_max_retries": None,
        # A task running when the broker connection drops is let finish: its acknowledgement
        # may be lost and the task delivered again, which every task here tolerates. Cancelling
        # it instead would only redo a fan-out's work. (Set explicitly: Celery's default is
        # about to change.)
        "worker_cancel_long_running_tasks_on_connection_loss": False,
        # A task is acknowledged when it has finished, and given back to the broker when its
        # worker dies, so a fan-out cut short runs again; every task is idempotent for that.
        # (RabbitMQ gives an unacknowledged task back as soon as the worker's connection
        # closes; Redis once its visibility timeout, an hour, has passed; the stalled fan-out
        # sweep does not wait for either.)
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "worker_prefetch_multiplier": 1,
        # Task events, so Flower shows tasks from the moment they are sent.
        "worker_send_task_events": True,
        "task_send_sent_event": True,
        "task_serializer": "json",
        "accept_content": ["json"],
        "task_ignore_result": True,
        "task_queues": task_queues(settings),
        "task_routes": TASK_ROUTES,
        # A task no route names still lands on a queue every worker consumes.
        "task_default_queue": MAINTENANCE_QUEUE,
        "enable_utc": True,
        "timezone": "UTC",
    }


# One quick retry covers a pooled connection that went stale; a broker that is really down
# fails fast, and the request still answers.
PUBLISH_RETRY_POLICY = {"max_retries": 1, "interval_start": 0, "interval_step": 0.1,
                        "interval_max": 0.1}


class Sender(Protocol):
    def send(self, task_name: str, args: list) -> bool:
        """Hand one task to the workers; False when it could not be sent."""
        ...


class CelerySender:
    """Sends tasks by name through a Celery app that only produces (one per broker, key prefix
    and queue type, per process)."""

    def __init__(self, settings: Settings) -> None:
        self._app = _producer(settings.celery_broker_url, settings.celery_key_prefix,
                              settings.celery_quorum_queues)

    def send(self, task_name: str, args: list) -> bool:
        try:
            self._app.send_task(task_name, args=args, retry=True,
                                retry_policy=PUBLISH_RETRY_POLICY)
        except Exception as exc:  # any broker failure: the caller's work is already durable
            log.warning("send failed task=%s error=%s: %s", task_name, type(exc).__name__, exc)
            return False
        return True


class RecordingSender:
    """Keeps what would have been sent, for tests: ``sent`` is a list of (task name, args)."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, list]] = []

    def send(self, task_name: str, args: list) -> bool:
        self.sent.append((task_name, args))
        return True


@functools.lru_cache(maxsize=8)
def _producer(broker_url: str, key_prefix: str, quorum_queues: bool) -> Celery:
    settings = Settings(celery_broker_url=broker_url, celery_key_prefix=key_prefix,
                        celery_quorum_queues=quorum_queues)
    app = Celery("device-jobs-producer", set_as_current=False)
    app.conf.update(celery_config(settings))
    return app


def carry_out(outcome: Outcome, settings: Settings, sender: Sender | None = None) -> None:
    """After the changes have committed: decide the stage gates they may have decided (which
    may leave more to do), nudge devices, send fan-outs and stage releases, complete jobs, give
    devices their MQTT identities or remove them."""
    sender = sender or CelerySender(settings)
    for job_id in list(outcome.gate_checks):
        outcome.merge(gates.evaluate_gate(job_id, datetime.now(UTC)))
    for (job_id, event), devices in outcome.nudges.items():
        _nudge(sender, settings, job_id, event, devices)
    for job_id, event in outcome.job_nudges:
        _nudge(sender, settings, job_id, event, None)
    for job_id in outcome.fan_outs:
        if sender.send(FAN_OUT_TASK, [str(job_id)]):
            db.execute("mark_fanout_enqueued", job_id=job_id)
        else:
            log.warning("fan-out not sent job_id=%s; the stalled fan-out sweep will", job_id)
    for job_id, stage in outcome.stage_releases:
        if not sender.send(RELEASE_STAGE_TASK, [str(job_id), stage]):
            log.warning("stage release not sent job_id=%s stage=%d; the gate sweep will",
                        job_id, stage)
    for job_id in outcome.may_have_completed:
        completion.complete_if_done(job_id)
    _carry_out_broker_identities(outcome, settings)


def _carry_out_broker_identities(outcome: Outcome, settings: Settings) -> None:
    """Give devices their MQTT identities or take them away, when the server issues them. A
    broker that cannot be told is logged: a device without its identity asks for it again
    (POST /devices/<uuid>/mqtt-credentials), a removed device's only reads a topic nothing
    publishes to any more."""
    if not broker_identities.issues_credentials(settings):
        return
    for device_uuid, token_hash in outcome.broker_grants.items():
        broker_identities.grant_or_explain(settings, device_uuid, token_hash)
    for device_uuid in outcome.broker_revocations:
        broker_identities.revoke(settings, device_uuid)


def deliver(decided: Decided[T], settings: Settings, sender: Sender | None = None) -> T:
    """Carry out what a domain function decided; answer what it answered."""
    carry_out(decided.outcome, settings, sender)
    return decided.answer


def _nudge(sender: Sender, settings: Settings, job_id: uuid.UUID, event: str,
           device_uuids: list[uuid.UUID] | None) -> None:
    """Ask a worker to nudge devices about ``job_id`` over MQTT (nothing with MQTT_URL unset).

    ``device_uuids`` None: the worker nudges every device of the job whose latest row is in the
    status the event is about (QUEUED for "queued", CANCELED for "canceled").
    """
    if event not in NUDGE_EVENTS:
        raise ValueError(f"unknown nudge event {event!r}; expected one of {NUDGE_EVENTS}")
    if not settings.mqtt_url or device_uuids == []:
        return
    devices = None if device_uuids is None else [str(u) for u in device_uuids]
    sender.send(NUDGE_TASK, [str(job_id), event, devices])
