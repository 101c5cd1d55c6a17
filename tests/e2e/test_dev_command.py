"""`dispatcher dev` runs API, worker, beat and Flower; Ctrl-C stops every one of them."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from processes import free_port, purge_broker_keys

from dispatcher.commands.demo.processes import answers
from dispatcher.commands.stack import settings_environment

ROOT = Path(__file__).resolve().parents[2]
START_TIMEOUT_S = 90.0

pytestmark = pytest.mark.slow


def descendants(pid: int) -> set[int]:
    """Every process below ``pid``, whatever session it started for itself."""
    found: set[int] = set()
    pending = [pid]
    while pending:
        parent = pending.pop()
        try:
            tasks = Path(f"/proc/{parent}/task").iterdir()
            children = {int(c) for task in tasks
                        for c in (task / "children").read_text().split()}
        except OSError:
            continue
        pending.extend(children - found)
        found |= children
    return found


def is_alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_ctrl_c_stops_api_worker_beat_and_flower_and_leaves_no_process(settings):
    api_port, flower_port = free_port(), free_port()
    env = settings_environment(settings)
    env["PYTHONUNBUFFERED"] = "1"
    dev = subprocess.Popen(
        [sys.executable, "-m", "dispatcher", "dev", "--api-port", str(api_port),
         "--flower-port", str(flower_port)],
        env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        start_new_session=True,  # its own process group, as a terminal's foreground job is
    )
    output: list[str] = []
    reader = threading.Thread(target=lambda: output.extend(iter(dev.stdout.readline, "")),
                              daemon=True)
    reader.start()
    tree: set[int] = set()
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while not (answers(f"http://127.0.0.1:{api_port}/readyz")
                   and answers(f"http://127.0.0.1:{flower_port}/healthcheck")
                   and any(" ready." in line for line in output)
                   and any("beat: Starting" in line for line in output)):
            assert dev.poll() is None, "".join(output)
            assert time.monotonic() < deadline, "".join(output)
            time.sleep(0.2)
        # Each line is prefixed with the process it came from.
        for name in ("api", "worker", "beat", "flower"):
            assert any(line.split("|")[0].split()[-1:] == [name] for line in output if "|" in line)
        tree = descendants(dev.pid)
        assert len(tree) >= 8, tree  # 4 shells' worth of servers, their workers and children

        os.killpg(dev.pid, signal.SIGINT)  # what Ctrl-C in the terminal does
        dev.wait(timeout=30)
        reader.join(timeout=5)
        transcript = "".join(output)
        assert "SIGINT received" in transcript
        assert "SIGKILL" not in transcript, transcript  # everyone stopped when asked to
        deadline = time.monotonic() + 10
        while any(is_alive(pid) for pid in tree) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert [pid for pid in tree if is_alive(pid)] == []
        assert not answers(f"http://127.0.0.1:{api_port}/healthz")
    finally:
        if dev.poll() is None:
            os.killpg(dev.pid, signal.SIGKILL)
        for pid in tree | descendants(dev.pid):
            if is_alive(pid):
                os.kill(pid, signal.SIGKILL)
        purge_broker_keys(settings)
