"""gunicorn settings for the device-jobs API; `dispatcher serve` runs gunicorn with this file.

Command-line options (`dispatcher serve --bind … --workers … --threads …`) win over these.
The app is not preloaded: each worker opens its own PostgreSQL pool after the fork.
"""

import multiprocessing
import os
import shutil
import tempfile

from dispatcher.logs import configure_logging

# Threads serve the many short device polls while a request waits on PostgreSQL. Requests are
# mostly CPU in Python, so a process per core and one more: 2 x CPUs + 1 only added context
# switches (poll p99 ~70 ms instead of ~50 ms on 2 cores, the same throughput) and a copy of the
# idle devices, a pool and a listener per extra worker.
worker_class = "gthread"
workers = int(os.environ.get("WEB_CONCURRENCY", multiprocessing.cpu_count() + 1))
threads = int(os.environ.get("API_THREADS", 4))
timeout = 30
graceful_timeout = 20
keepalive = 5
# Recycle workers now and then so a slow leak can never grow without bound. Not too often: a
# fleet of 100,000 polling every 30 s is ~3,300 requests/s, and each restart costs about a
# second of CPU (imports, pools, the idle devices' load), so 20,000 meant a restart every few
# seconds somewhere; a million is one per worker every half hour or so.
max_requests = 1_000_000
max_requests_jitter = 100_000
# Access lines for every poll are a lot at fleet scale: off unless asked for ("-" is stdout).
accesslog = os.environ.get("API_ACCESS_LOG") or None
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1")

# Prometheus multiprocess mode: every worker writes its metrics to files in one directory and
# /metrics adds them up. Deployments that share the directory with the Celery worker (systemd,
# compose, `dispatcher dev`) set it; otherwise the API gets a private one for its lifetime.
_private_metrics_dir = None
if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    _private_metrics_dir = tempfile.mkdtemp(prefix="device-jobs-metrics-")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = _private_metrics_dir

configure_logging(os.environ.get("LOG_LEVEL", "INFO"))


def post_worker_init(worker):
    # Each worker keeps the fleet's idle devices in memory, so most polls need no query, and
    # writes the devices it heard from (last_seen_at) in batches, on a timer as well.
    from dispatcher.config import Settings
    from dispatcher.poll import idle, sightings

    idle.start(Settings.from_env().session_database_url)
    sightings.of_this_process.keep_flushing()


def worker_exit(server, worker):
    # A worker stopping (restart, deploy) writes the sightings it still holds.
    from dispatcher.poll import sightings

    sightings.of_this_process.flush()


def child_exit(server, worker):
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


def on_exit(server):
    if _private_metrics_dir:
        shutil.rmtree(_private_metrics_dir, ignore_errors=True)
