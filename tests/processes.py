"""Real server processes for end-to-end tests: Celery worker, Celery beat, the API under gunicorn.

Each process is started with the command line production uses (``dispatcher.commands.stack``)
and its configuration as environment variables made from a Settings, so a test's processes share
its database and its Celery key prefix and nothing else. Processes run in their own session:
``kill`` SIGKILLs the whole process group (a worker and its pool children), as a crash would.

    with ServerProcesses(tmp_path) as servers:
        worker = servers.start_worker(settings)
        api = servers.start_api(settings)
        requests.post(f"{api.url}/api/v1/jobs/execute", ...)
        worker.kill()
"""

from __future__ import annotations

import socket
import subprocess
import time
import urllib.request
import uuid
from collections.abc import Callable
from pathlib import Path

import redis

from dispatcher.commands import stack
from dispatcher.commands.demo.processes import (
    STOP_TIMEOUT_S,
    BackgroundProcess,
    ProcessFailed,
    launch,
    stop_together,
    wait_until_ready,
)
from dispatcher.config import Settings

PROJECT_DIR = Path(__file__).resolve().parent.parent
START_TIMEOUT_S = 30.0
# Startup handshakes that only matter for a cluster of long-lived workers.
FAST_WORKER_START = ["--without-mingle", "--without-gossip", "--without-heartbeat"]


def settings_environment(settings: Settings, base: dict[str, str] | None = None) -> dict[str, str]:
    """The environment under which ``Settings.from_env()`` gives back ``settings``."""
    env = stack.settings_environment(settings, base)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def wait_until(condition: Callable[[], object], timeout_s: float = 30.0,
               what: str = "condition", interval_s: float = 0.1) -> object:
    """Poll ``condition`` until it returns something truthy, and return that; fail the test
    with ``what`` in the message when ``timeout_s`` passes first."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")
        time.sleep(interval_s)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class ServerProcess:
    """One server process to be started, its log file, and how to tell it is ready (the
    process itself is a ``dispatcher.commands.demo.processes.BackgroundProcess``)."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], log_path: Path,
                 is_ready: Callable[[ServerProcess], bool]) -> None:
        self.name = name
        self.argv = argv
        self.env = env
        self.log_path = log_path
        self._is_ready = is_ready
        self.process: BackgroundProcess | None = None

    def start(self, timeout_s: float = START_TIMEOUT_S) -> ServerProcess:
        self.process = launch(self.name, self.argv, self.env, self.log_path, cwd=PROJECT_DIR)
        try:
            wait_until_ready(self.process, lambda: self._is_ready(self), timeout_s)
        except ProcessFailed:
            self.process.kill()
            raise
        return self

    @property
    def popen(self) -> subprocess.Popen:
        assert self.process is not None
        return self.process.popen

    @property
    def pid(self) -> int:
        return self.popen.pid

    def is_running(self) -> bool:
        return self.process is not None and self.process.is_running()

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def kill(self) -> None:
        """SIGKILL the process and its children at once, as a crash or OOM kill would."""
        if self.process is not None:
            self.process.kill()

    def stop(self, timeout_s: float = STOP_TIMEOUT_S) -> None:
        """SIGTERM (a warm shutdown), then SIGKILL whatever is left after ``timeout_s``."""
        if self.process is not None:
            self.process.stop(timeout_s)


class ApiServer(ServerProcess):
    def __init__(self, port: int, **kwargs) -> None:
        super().__init__(**kwargs)
        self.port = port
        self.url = f"http://127.0.0.1:{port}"


def _log_contains(marker: str) -> Callable[[ServerProcess], bool]:
    return lambda process: marker in process.log_text()


def _answers_healthz(process: ServerProcess) -> bool:
    try:
        with urllib.request.urlopen(f"{process.url}/healthz", timeout=1) as response:
            return response.status == 200
    except OSError:
        return False


class ServerProcesses:
    """Starts server processes for a test and stops every one of them at the end."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.directory.mkdir(parents=True, exist_ok=True)
        self.started: list[ServerProcess] = []

    def __enter__(self) -> ServerProcesses:
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop_all()

    def _log_path(self, name: str) -> Path:
        return self.directory / f"{name}-{len(self.started)}.log"

    def _start(self, process: ServerProcess) -> ServerProcess:
        self.started.append(process)
        return process.start()

    def start_worker(self, settings: Settings, queues: str | None = None, concurrency: int = 1,
                     pool: str = "prefork", extra: list[str] | None = None) -> ServerProcess:
        """A Celery worker consuming every queue (or ``queues``, comma-separated)."""
        hostname = f"test-{uuid.uuid4().hex[:8]}@%h"
        argv = stack.worker_command("INFO", queues, concurrency, hostname,
                                    [f"--pool={pool}", *FAST_WORKER_START, *(extra or [])])
        return self._start(ServerProcess(
            "celery worker", argv, settings_environment(settings), self._log_path("worker"),
            _log_contains(" ready."),
        ))

    def start_beat(self, settings: Settings) -> ServerProcess:
        schedule_file = self.directory / f"beat-schedule-{len(self.started)}"
        argv = stack.beat_command("INFO", str(schedule_file))
        return self._start(ServerProcess(
            "celery beat", argv, settings_environment(settings), self._log_path("beat"),
            _log_contains("beat: Starting..."),
        ))

    def start_api(self, settings: Settings, workers: int = 1, threads: int = 4) -> ApiServer:
        """The API under gunicorn, as deployed; ``.url`` is its base URL."""
        port = free_port()
        argv = stack.gunicorn_command(f"127.0.0.1:{port}", workers, threads)
        return self._start(ApiServer(
            port, name="api", argv=argv, env=settings_environment(settings),
            log_path=self._log_path("api"), is_ready=_answers_healthz,
        ))

    def stop_all(self) -> None:
        stop_together([p.process for p in reversed(self.started) if p.process is not None])


def purge_broker_keys(settings: Settings) -> int:
    """Delete every broker key under the settings' key prefix (queues a test left behind)."""
    if not settings.celery_key_prefix or not settings.celery_broker_url.startswith("redis"):
        return 0
    client = redis.Redis.from_url(settings.celery_broker_url)
    try:
        keys = list(client.scan_iter(match=f"{settings.celery_key_prefix}*", count=1000))
        return client.delete(*keys) if keys else 0
    finally:
        client.close()
