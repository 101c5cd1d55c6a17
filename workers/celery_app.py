"""The Celery app of the workers and beat, built from Settings read from the environment.

``celery -A workers worker`` and ``celery -A workers beat`` find ``app`` here (re-exported by
``workers/__init__.py``). The configuration is ``dispatcher.sender.celery_config``, the same
mapping the API's sender uses; the beat schedule is ``workers.periodic.beat_schedule``.

The worker's main process never touches PostgreSQL or MQTT: each pool process opens its own
database pool and MQTT connection on first use, so nothing is shared across a fork.
"""

from __future__ import annotations

import logging
import os
import time

from celery import Celery
from celery.signals import task_postrun, task_prerun, worker_init

from dispatcher import metrics
from dispatcher.config import Settings
from dispatcher.sender import celery_config
from workers.periodic import beat_schedule

log = logging.getLogger(__name__)

METRICS_PORT_ENV = "WORKER_METRICS_PORT"


def build_celery_app(settings: Settings) -> Celery:
    celery_app = Celery("device-jobs")
    celery_app.conf.update(celery_config(settings))
    celery_app.conf.beat_schedule = beat_schedule(settings)
    celery_app.conf.imports = ("workers.tasks",)
    return celery_app


settings = Settings.from_env()
app = build_celery_app(settings)

_task_started_at: dict[str, float] = {}


@task_prerun.connect
def _note_task_start(task_id: str, task, **kwargs) -> None:
    _task_started_at[task_id] = time.monotonic()


@task_postrun.connect
def _record_task_metrics(task_id: str, task, state: str | None = None, **kwargs) -> None:
    started = _task_started_at.pop(task_id, None)
    metrics.TASKS.labels(task.name, state or "UNKNOWN").inc()
    if started is not None:
        metrics.TASK_DURATION.labels(task.name).observe(time.monotonic() - started)


@worker_init.connect
def _serve_metrics(**kwargs) -> None:
    """With WORKER_METRICS_PORT set, the worker serves its own /metrics (task counters)."""
    port = os.environ.get(METRICS_PORT_ENV)
    if not port:
        return
    from prometheus_client import start_http_server

    start_http_server(int(port), registry=metrics.scrape_registry(include_database=False))
    log.info("worker metrics served port=%s", port)
