"""The server processes of one running stack, as command lines.

`dispatcher serve|worker|beat|flower` exec these; `dispatcher dev` hands them to honcho and
`dispatcher demo` starts them in the background. Every process reads its configuration from
the environment (see dispatcher/config.py), so one environment describes the whole stack.
"""

from __future__ import annotations

import dataclasses
import os
import sys
from pathlib import Path

from dispatcher.config import Settings

PROJECT_DIR = Path(__file__).resolve().parents[2]
# Present in a source checkout (and the container image); absent from a wheel install, where
# gunicorn then runs with its defaults plus the command-line options.
GUNICORN_CONFIG = PROJECT_DIR / "deploy" / "gunicorn.conf.py"
WSGI_APP = "api.app:create_app()"
CELERY_APP = "workers"
METRICS_DIR_ENV = "PROMETHEUS_MULTIPROC_DIR"


def dispatcher_command(*args: str) -> list[str]:
    """``python -m dispatcher …`` with this interpreter (works without the console script)."""
    return [sys.executable, "-m", "dispatcher", *args]


def gunicorn_command(bind: str, workers: int | None, threads: int | None,
                     extra: list[str] | None = None) -> list[str]:
    argv = [sys.executable, "-m", "gunicorn"]
    if GUNICORN_CONFIG.exists():
        argv += ["--config", str(GUNICORN_CONFIG)]
    argv += ["--bind", bind]
    if workers:
        argv += ["--workers", str(workers)]
    if threads:
        argv += ["--threads", str(threads)]
    return [*argv, *(extra or []), WSGI_APP]


def celery_command(subcommand: str, *args: str) -> list[str]:
    return [sys.executable, "-m", "celery", "-A", CELERY_APP, subcommand, *args]


def worker_command(log_level: str, queues: str | None = None, concurrency: int | None = None,
                   hostname: str | None = None, extra: list[str] | None = None) -> list[str]:
    # -E: the worker sends task events, which is what Flower shows.
    argv = celery_command("worker", "-E", f"--loglevel={log_level}")
    if queues:
        argv.append(f"--queues={queues}")
    if concurrency:
        argv.append(f"--concurrency={concurrency}")
    if hostname:
        argv.append(f"--hostname={hostname}")
    return [*argv, *(extra or [])]


def beat_command(log_level: str, schedule_file: str | None = None,
                 extra: list[str] | None = None) -> list[str]:
    argv = celery_command("beat", f"--loglevel={log_level}")
    if schedule_file:
        argv.append(f"--schedule={schedule_file}")
    return [*argv, *(extra or [])]


def flower_command(address: str, port: int, extra: list[str] | None = None) -> list[str]:
    return [*celery_command("flower", f"--address={address}", f"--port={port}"), *(extra or [])]


def local_stack_commands(run_dir: Path, api_port: int, flower_port: int, log_level: str = "INFO",
                         worker_name: str = "worker@%h") -> dict[str, list[str]]:
    """API, worker, beat and Flower on 127.0.0.1, keeping their files under ``run_dir``."""
    return {
        "api": dispatcher_command("serve", "--bind", f"127.0.0.1:{api_port}", "--workers", "2",
                                  "--threads", "4"),
        "worker": dispatcher_command("--log-level", log_level, "worker", "--concurrency", "2",
                                     "--hostname", worker_name),
        "beat": dispatcher_command("--log-level", log_level, "beat", "--schedule-file",
                                   str(run_dir / "celerybeat-schedule")),
        "flower": dispatcher_command("flower", "--address", "127.0.0.1", "--port",
                                     str(flower_port)),
    }


def local_stack_environment(run_dir: Path, base: dict[str, str] | None = None) -> dict[str, str]:
    """The environment shared by a local stack's processes.

    One metrics directory for the API and the worker, so the API's /metrics also shows the
    worker's counters; Flower's API without auth, as it only listens on 127.0.0.1.
    """
    env = dict(os.environ if base is None else base)
    metrics_dir = run_dir / "metrics"
    metrics_dir.mkdir(parents=True, exist_ok=True)
    env[METRICS_DIR_ENV] = str(metrics_dir)
    env["FLOWER_UNAUTHENTICATED_API"] = "1"
    env["PYTHONUNBUFFERED"] = "1"
    return env


def settings_environment(settings: Settings, base: dict[str, str] | None = None) -> dict[str, str]:
    """The environment under which ``Settings.from_env()`` gives back ``settings``."""
    env = dict(os.environ if base is None else base)
    for field in dataclasses.fields(settings):
        value = getattr(settings, field.name)
        env[field.name.upper()] = ("1" if value else "0") if isinstance(value, bool) else str(value)
    return env
