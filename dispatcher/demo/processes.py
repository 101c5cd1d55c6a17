"""The demo's background processes: each in its own session, its output in a log file.

A session per process means one signal to its process group reaches the process and every
child it forked (gunicorn workers, Celery pool processes, a job's command), so stopping the
demo leaves nothing behind.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
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

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def log_tail(self, lines: int = 30) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])

    def is_running(self) -> bool:
        return self.popen.poll() is None

    def signal_group(self, signum: int) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.popen.pid, signum)


class BackgroundProcesses:
    """Starts processes with their output in ``log_dir``; ``stop_all`` ends every one."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.processes: list[BackgroundProcess] = []

    def start(self, name: str, argv: list[str], env: dict[str, str]) -> BackgroundProcess:
        log_path = self.log_dir / f"{name}.log"
        with log_path.open("ab") as log_file:
            popen = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL, stdout=log_file,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        process = BackgroundProcess(name, popen, log_path)
        self.processes.append(process)
        return process

    def wait_until(self, process: BackgroundProcess, is_ready: Callable[[], bool],
                   timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while not is_ready():
            if not process.is_running():
                raise ProcessFailed(f"{process.name} exited with {process.popen.returncode}; "
                                    f"last lines of {process.log_path}:\n{process.log_tail()}")
            if time.monotonic() > deadline:
                raise ProcessFailed(f"{process.name} not ready after {timeout_s:.0f}s; "
                                    f"last lines of {process.log_path}:\n{process.log_tail()}")
            time.sleep(0.1)

    def check_alive(self) -> None:
        for process in self.processes:
            if not process.is_running():
                raise ProcessFailed(f"{process.name} exited with {process.popen.returncode}; "
                                    f"last lines of {process.log_path}:\n{process.log_tail()}")

    def stop_all(self, timeout_s: float = STOP_TIMEOUT_S) -> None:
        """SIGTERM every process group at once, then SIGKILL whatever is left."""
        for process in self.processes:
            process.signal_group(signal.SIGTERM)
        deadline = time.monotonic() + timeout_s
        for process in self.processes:
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.popen.wait(max(0.0, deadline - time.monotonic()))
        for process in self.processes:
            # Also reaches children left behind by a leader that already exited.
            process.signal_group(signal.SIGKILL)
            process.popen.wait()
        self.processes.clear()
