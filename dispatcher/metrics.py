"""Prometheus metrics: their definitions, the database collector and the exposition.

Processes write to these metrics; the API's ``/metrics`` exposes them. With several processes
(gunicorn workers, Celery worker children) prometheus_client's multiprocess mode is used: when
``PROMETHEUS_MULTIPROC_DIR`` is set, each process writes its values to files there and a scrape
adds them up. A Celery worker sharing that directory with the API (same host or shared volume)
shows up in the API's ``/metrics``; a worker elsewhere serves its own (``--metrics-port``).

Counts of executions by status are not kept in the processes at all: they are read from
PostgreSQL at scrape time with two cheap queries, so they are exact whichever process answers.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector

from dispatcher import db
from schemas.vocabulary import DEVICE_STATUSES, JOB_STATUSES

log = logging.getLogger(__name__)

NAMESPACE = "device_jobs"
MULTIPROCESS_DIR_ENV = "PROMETHEUS_MULTIPROC_DIR"
# A scrape must answer quickly even when PostgreSQL does not.
SCRAPE_DB_TIMEOUT_S = 2.0

HTTP_REQUESTS = Counter(
    "http_requests", "API requests answered, by route and status code",
    ["method", "endpoint", "status"], namespace=NAMESPACE,
)
HTTP_REQUEST_DURATION = Histogram(
    "http_request_duration_seconds", "API request latency by route",
    ["method", "endpoint"], namespace=NAMESPACE,
    buckets=(0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
)
POLLS = Counter(
    "polls", "Device polls of /jobs/next, by whether a job was handed out",
    ["result"], namespace=NAMESPACE,
)
FANOUT_DURATION = Histogram(
    "fanout_duration_seconds", "Time to expand one job into its device rows",
    namespace=NAMESPACE, buckets=(0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 120, 300, 600, 1800),
)
NUDGES = Counter(
    "nudges", "MQTT nudges published to devices, by result (sent or failed)",
    ["result"], namespace=NAMESPACE,
)
TASKS = Counter(
    "celery_tasks", "Celery tasks finished, by task name and final state",
    ["task", "state"], namespace=NAMESPACE,
)
TASK_DURATION = Histogram(
    "celery_task_duration_seconds", "Celery task run time by task name",
    ["task"], namespace=NAMESPACE,
    buckets=(0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 1800),
)


# Labelled once: the poll is the hottest request.
_POLLS_BY_RESULT = {True: POLLS.labels("job"), False: POLLS.labels("no_job")}


def record_poll(handed_out_job: bool) -> None:
    _POLLS_BY_RESULT[handed_out_job].inc()


def record_nudges(sent: int, failed: int = 0) -> None:
    if sent:
        NUDGES.labels("sent").inc(sent)
    if failed:
        NUDGES.labels("failed").inc(failed)


def record_fanout_duration(seconds: float) -> None:
    FANOUT_DURATION.observe(seconds)


def multiprocess_mode() -> bool:
    return bool(os.environ.get(MULTIPROCESS_DIR_ENV))


class DatabaseCollector:
    """Executions and device executions by status, read from PostgreSQL at scrape time."""

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily(
            f"{NAMESPACE}_database_scrape_ok", "1 when the status counts below could be read"
        )
        executions = GaugeMetricFamily(
            f"{NAMESPACE}_executions", "Job executions by status", labels=["status"]
        )
        device_executions = GaugeMetricFamily(
            f"{NAMESPACE}_device_executions",
            "Device executions (latest attempt per device and job) by status", labels=["status"],
        )
        try:
            with db.pool().connection(timeout=SCRAPE_DB_TIMEOUT_S) as conn:
                c = db.Connector(conn)
                by_job_status = _counts(c.all("metrics_executions_by_status"), JOB_STATUSES)
                by_device_status = _counts(
                    c.all("metrics_device_executions_by_status"), DEVICE_STATUSES
                )
        except Exception as exc:  # any failure: report it in a gauge, still answer
            log.warning("metrics database scrape failed error=%s", type(exc).__name__)
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        for status, n in by_job_status.items():
            executions.add_metric([status], n)
        for status, n in by_device_status.items():
            device_executions.add_metric([status], n)
        yield from (up, executions, device_executions)


def _counts(rows: list[dict], statuses: tuple[str, ...]) -> dict[str, int]:
    counts = dict.fromkeys(statuses, 0)
    for row in rows:
        counts[row["status"]] = int(row["n"])
    return counts


def scrape_registry(include_database: bool = True) -> CollectorRegistry:
    """A registry holding this host's process metrics and (for the API) the database counts."""
    registry = CollectorRegistry()
    if multiprocess_mode():
        MultiProcessCollector(registry)
    else:
        registry.register(REGISTRY)
    if include_database:
        registry.register(DatabaseCollector())
    return registry


def exposition(include_database: bool = True) -> tuple[bytes, str]:
    """The text a Prometheus scrape receives, and its content type."""
    return generate_latest(scrape_registry(include_database)), CONTENT_TYPE_LATEST
