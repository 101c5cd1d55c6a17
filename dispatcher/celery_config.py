"""The Celery configuration of a deployment, as one plain mapping built from Settings.

The workers' app (``workers/celery_app.py``) and the API's producer (``dispatcher.enqueue``)
both load it, so queue names, routes, key prefix and delivery guarantees are written once.
A task's name prefix picks its queue, so a new task is routed by naming it.
"""

from __future__ import annotations

from kombu import Exchange, Queue

from dispatcher.config import Settings

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


def periodic_task_name(sweep_name: str) -> str:
    """The name of the task that runs a periodic sweep: the sweep's own, on the maintenance
    queue."""
    return f"{MAINTENANCE_QUEUE}.{sweep_name}"


def celery_config(settings: Settings) -> dict:
    """The Celery configuration of this deployment, as a plain mapping."""
    transport_options: dict = {
        "socket_connect_timeout": BROKER_CONNECT_TIMEOUT_S,
        "socket_timeout": BROKER_SOCKET_TIMEOUT_S,
    }
    if settings.celery_key_prefix:
        transport_options["global_keyprefix"] = settings.celery_key_prefix
    return {
        "broker_url": settings.celery_broker_url,
        "broker_transport_options": transport_options,
        "broker_connection_retry_on_startup": True,
        # A task is acknowledged when it has finished, and given back to the broker when its
        # worker dies, so a fan-out cut short runs again; every task is idempotent for that.
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "worker_prefetch_multiplier": 1,
        # Task events, so Flower shows tasks from the moment they are sent.
        "worker_send_task_events": True,
        "task_send_sent_event": True,
        "task_serializer": "json",
        "accept_content": ["json"],
        "task_ignore_result": True,
        # Each queue with its own exchange and key: a bare Queue(name) would bind every queue to
        # the default exchange and key, and each message would land in all of them.
        "task_queues": [Queue(name, Exchange(name), routing_key=name) for name in QUEUES],
        "task_routes": TASK_ROUTES,
        # A task no route names still lands on a queue every worker consumes.
        "task_default_queue": MAINTENANCE_QUEUE,
        "enable_utc": True,
        "timezone": "UTC",
    }
