"""Background processes, each in its own session with its output in a log file: the demo's,
and those the end-to-end tests start (``tests/processes.py`` builds on this module).

A session per process means one signal to its process group reaches the process and every
child it forked (gunicorn workers, Celery pool processes, a job's command), so stopping leaves
nothing behind.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

STOP_TIMEOUT_S = 15.0


class ProcessFailed(RuntimeError):
    """A background process exited, or did not become ready in time."""


@dataclass
class BackgroundProcess:
    name: str
    popen: subprocess.Popen
    log_path: Path

    @property
    def pid(self) -> int:
        return self.popen.pid

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def log_tail(self, lines: int = 30) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])

    def is_running(self) -> bool:
        return self.popen.poll() is None

    def signal_group(self, signum: int) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.popen.pid, signum)

    def kill(self) -> None:
        """SIGKILL the process and its children at once, as a crash or an OOM kill would."""
        self.signal_group(signal.SIGKILL)
        self.popen.wait(STOP_TIMEOUT_S)

    def stop(self, timeout_s: float = STOP_TIMEOUT_S) -> None:
        """SIGTERM (a warm shutdown), then SIGKILL whatever is left after ``timeout_s``."""
        if self.is_running():
            self.signal_group(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.popen.wait(timeout_s)
        # Also reaches children left behind by a leader that already exited.
        self.kill()

    def failure(self, why: str) -> ProcessFailed:
        return ProcessFailed(f"{self.name} {why}; last lines of {self.log_path}:\n"
                             f"{self.log_tail()}")


def launch(name: str, argv: list[str], env: dict[str, str], log_path: Path,
           cwd: Path | None = None) -> BackgroundProcess:
    """Start ``argv`` in a session of its own, its output appended to ``log_path``."""
    with log_path.open("ab") as log_file:
        popen = subprocess.Popen(argv, env=env, cwd=cwd, stdin=subprocess.DEVNULL,
                                 stdout=log_file, stderr=subprocess.STDOUT,
                                 start_new_session=True)
    return BackgroundProcess(name, popen, log_path)


def answers(url: str) -> bool:
    """Whether ``url`` answers 200: a server process is up (a probe, not a call of its API)."""
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


def wait_until_ready(process: BackgroundProcess, is_ready: Callable[[], bool],
                     timeout_s: float) -> None:
    """Wait for ``is_ready``; ProcessFailed if the process exits or the time runs out first."""
    deadline = time.monotonic() + timeout_s
    while not is_ready():
        if not process.is_running():
            raise process.failure(f"exited with {process.popen.returncode}")
        if time.monotonic() > deadline:
            raise process.failure(f"not ready after {timeout_s:.0f}s")
        time.sleep(0.1)


class BackgroundProcesses:
    """Starts processes with their output in ``log_dir``; ``stop_all`` ends every one."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.processes: list[BackgroundProcess] = []

    def start(self, name: str, argv: list[str], env: dict[str, str]) -> BackgroundProcess:
        process = launch(name, argv, env, self.log_dir / f"{name}.log")
        self.processes.append(process)
        return process

    def wait_until(self, process: BackgroundProcess, is_ready: Callable[[], bool],
                   timeout_s: float) -> None:
        wait_until_ready(process, is_ready, timeout_s)

    def check_alive(self) -> None:
        for process in self.processes:
            if not process.is_running():
                raise process.failure(f"exited with {process.popen.returncode}")

    def stop_all(self, timeout_s: float = STOP_TIMEOUT_S) -> None:
        stop_together(self.processes, timeout_s)
        self.processes.clear()


def stop_together(processes: list[BackgroundProcess], timeout_s: float = STOP_TIMEOUT_S) -> None:
    """SIGTERM every process group at once, then SIGKILL whatever is left: a warm shutdown
    of all of them in the time of the slowest, not of their sum."""
    for process in processes:
        if process.is_running():
            process.signal_group(signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    for process in processes:
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.popen.wait(max(0.0, deadline - time.monotonic()))
    for process in processes:
        process.kill()  # also reaches children left behind by a leader that already exited
