"""Running the operator commands of ``dispatcher`` as an operator's machine would: in a
subprocess where the server's libraries cannot be imported (as with only the ``client`` extra
installed), against a URL and token given by environment variables."""

from __future__ import annotations

import os
import pty
import select
import subprocess
import sys
import time
from pathlib import Path

# Everything the server needs and an operator's machine lacks.
SERVER_LIBRARIES = ("flask", "flask_smorest", "werkzeug", "webargs", "celery", "kombu",
                    "psycopg", "psycopg_pool", "redis", "paho", "croniter", "gunicorn",
                    "prometheus_client", "honcho")
RUNNER = f"""
import sys

class ServerLibraryBlocker:
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in {SERVER_LIBRARIES!r}:
            raise ImportError("not installed with the client extra: " + name)
        return None

sys.meta_path.insert(0, ServerLibraryBlocker())
from dispatcher_cli import main
sys.exit(main(sys.argv[1:]))
"""


def operator_env(url: str | None, token: str | None, config: Path, **extra: str) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DEVICE_JOBS_")}
    env.update({"DEVICE_JOBS_CONFIG": str(config), "COLUMNS": "160", "PYTHONUNBUFFERED": "1"})
    if url:
        env["DEVICE_JOBS_URL"] = url
    if token:
        env["DEVICE_JOBS_TOKEN"] = token
    env.update(extra)
    return env


def run(env: dict, *args: str, stdin: str = "", timeout_s: float = 120.0):
    """``dispatcher ARGS`` with the server's libraries blocked: a CompletedProcess."""
    return subprocess.run([sys.executable, "-c", RUNNER, *args], env=env, input=stdin,
                          capture_output=True, text=True, timeout=timeout_s)


def run_on_terminal(env: dict, *args: str, timeout_s: float = 120.0) -> tuple[int, str]:
    """``dispatcher ARGS`` on a pseudo-terminal: its exit code and everything it drew."""
    controller, terminal = pty.openpty()
    process = subprocess.Popen([sys.executable, "-c", RUNNER, *args], env=env,
                               stdin=terminal, stdout=terminal, stderr=terminal)
    os.close(terminal)
    drawn = b""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        ready, _, _ = select.select([controller], [], [], 0.2)
        if ready:
            try:
                chunk = os.read(controller, 65536)
            except OSError:  # the terminal closed: the process is gone
                break
            if not chunk:
                break
            drawn += chunk
        elif process.poll() is not None:
            break
    os.close(controller)
    return process.wait(timeout=10), drawn.decode(errors="replace")
