"""An agent whose state directory is full, then read-only: a job it cannot record is not run and
ends FAILED with the reason on the device row, never QUEUED or IN_PROGRESS for ever; once the
directory is writable again the next job runs.

The state directory is a tmpfs of 64 KiB mounted for the test (root only: skipped where
mounting is not allowed).
"""

from __future__ import annotations

import contextlib
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from chaos_stack import report

pytestmark = pytest.mark.slow

STATE_UNWRITABLE = "the agent cannot write its state directory"


@contextlib.contextmanager
def small_disk(path: Path) -> Iterator[Path]:
    path.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k,mode=700", "tmpfs",
                              str(path)], capture_output=True, text=True, check=False)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {mounted.stderr.strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True, check=False)


def fill(directory: Path) -> Path:
    filler = directory / "filler"
    with filler.open("wb", buffering=0) as out, contextlib.suppress(OSError):
        while True:
            out.write(b"\0" * 4096)
    return filler


def remount(path: Path, mode: str) -> None:
    subprocess.run(["mount", "-o", f"remount,{mode}", str(path)], check=True,
                   capture_output=True)


def job_on(stack, device: dict) -> str:
    return stack.execute({"target_type": "device", "target_devices": [str(device["uuid"])],
                          "job_document": {"version": "1.0", "steps": [
                              {"name": "Mark", "type": "runCommand",
                               "input": {"command": "sh,-c,echo ran >> $DEVICE_HOME/ran"}}]}})


def device_row(stack, job_id: str) -> dict:
    return stack.sql("SELECT status, reason FROM device_job_status WHERE job_id = %s",
                     job_id)[0]


def test_an_agent_whose_state_directory_is_full_or_read_only(chaos_stack):
    stack = chaos_stack()
    stack.start_worker()
    stack.start_api()
    device = stack.register("agent-disk", "chaos-agent")
    ran = device["home"] / "ran"
    with small_disk(device["home"] / "state") as state:
        stack.start_agent(device)
        outcomes = {}
        filler = fill(state)
        for fault in ("full", "read-only"):
            executed_at = time.monotonic()
            job_id = job_on(stack, device)
            stack.wait_job(job_id, "FAILED", timeout_s=60)
            row = device_row(stack, job_id)
            assert row["status"] == "FAILED" and STATE_UNWRITABLE in row["reason"], row
            assert not ran.exists()
            outcomes[fault] = f"FAILED in {time.monotonic() - executed_at:.1f} s: {row['reason']}"
            if fault == "full":
                filler.unlink()
                remount(state, "ro")
        remount(state, "rw")
        job_id = job_on(stack, device)
        stack.wait_job(job_id, "SUCCEEDED", timeout_s=60)
        assert ran.read_text() == "ran\n"
    report("agent-state-directory-full-or-read-only",
           fault="the agent's state directory full (64 KiB tmpfs), then read-only",
           job_while_full=outcomes["full"], job_while_read_only=outcomes["read-only"],
           after_repair="the next job SUCCEEDED; no step ran while the directory was unwritable")
