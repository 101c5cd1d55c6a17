"""An agent whose state directory is full, then read-only, and agents whose clock is hours
off.

A full or read-only state directory: a job it cannot record is not run and
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
from chaos_stack import FINAL, report

from dispatcher.signing import create_key_file

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


CLOCK_OFF_S = 3 * 3600
TWO_STEPS = {"version": "1.0", "steps": [
    {"name": step, "type": "runCommand",
     "input": {"command": f"sh,-c,echo {step} >> $DEVICE_HOME/ran"}} for step in ("one", "two")]}


def test_devices_whose_clock_is_hours_off(chaos_stack, tmp_path):
    """Agents whose wall clock is 3 hours ahead or behind (``tests/skewed_agent.py``) are given
    a signed job valid for 10 minutes: they refuse it, and the reason on their row says their
    clock looks off and by how much (from the server's Date header), no step run; an agent as
    far off without a signing key, and one on time, run it once. The job ends FAILED with
    exact counters; nothing is left pending."""
    key_file = tmp_path / "signing.pem"
    public_key = create_key_file(key_file)
    stack = chaos_stack(signing_key_file=str(key_file), signature_valid_s=600)
    stack.start_worker()
    stack.start_api()
    fleet = {name: stack.register(name, "chaos-clock")
             for name in ("on-time", "ahead", "behind", "ahead-unsigned")}
    offsets = {"on-time": 0, "ahead": CLOCK_OFF_S, "behind": -CLOCK_OFF_S,
               "ahead-unsigned": CLOCK_OFF_S}
    agents = {name: stack.start_agent(device, clock_offset_s=offsets[name],
                                      **({} if name == "ahead-unsigned"
                                         else {"signing_public_key": public_key}))
              for name, device in fleet.items()}
    executed_at = time.monotonic()
    job_id = stack.execute({"job_document": TWO_STEPS, "target_type": "group",
                            "target_filter": {"device_type": "chaos-clock"}})
    job = stack.wait_job(job_id, "SUCCEEDED", "FAILED", timeout_s=60)
    settled_s = time.monotonic() - executed_at
    rows = {str(r["device_uuid"]): r for r in stack.sql(
        "SELECT device_uuid, status, reason FROM device_job_status WHERE job_id = %s", job_id)}
    row = {name: rows[str(device["uuid"])] for name, device in fleet.items()}
    assert row["ahead"]["status"] == "REJECTED", row["ahead"]
    assert "expired at" in row["ahead"]["reason"]
    assert "this device's clock is 3 h 0 min ahead of the server's" in row["ahead"]["reason"]
    assert row["behind"]["status"] == "REJECTED", row["behind"]
    assert "not valid before" in row["behind"]["reason"]
    assert "this device's clock is 3 h 0 min behind the server's" in row["behind"]["reason"]
    for name in ("ahead", "behind"):
        assert not (fleet[name]["home"] / "ran").exists(), name
        assert "clock is 3 h 0 min" in agents[name].log_text(), name
    for name in ("on-time", "ahead-unsigned"):
        assert row[name]["status"] == "SUCCEEDED", row[name]
        assert (fleet[name]["home"] / "ran").read_text() == "one\ntwo\n", name  # each step once
    assert (job["status"], job["total_devices"], job["succeeded_devices"],
            job["failed_devices"]) == ("FAILED", 4, 2, 2)
    reports = stack.device_reports(job_id)
    for name, device in fleet.items():
        finals = [s for s in reports[str(device["uuid"])] if s in FINAL]
        assert finals == [row[name]["status"]], (name, reports[str(device["uuid"])])
    report("device-clock-hours-off",
           fault=f"agents' clocks {CLOCK_OFF_S // 3600} h ahead and behind; a signed job valid"
                 " 10 min",
           ahead=f"REJECTED: {row['ahead']['reason']}",
           behind=f"REJECTED: {row['behind']['reason']}",
           unsigned_agent_ahead="SUCCEEDED, each step run once",
           job=f"FAILED (2 succeeded, 2 failed) {settled_s:.1f} s after execute; nothing pending")
