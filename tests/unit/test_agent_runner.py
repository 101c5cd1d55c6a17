"""The agent's job life cycle against a local stand-in of the device endpoints.

Real processes, real files, real HTTP; the server side is ``agent_fakes.FakeDeviceServer``.
The same scenarios run against the real API in tests/integration and tests/e2e.
"""

from __future__ import annotations

import json
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest
from agent_fakes import DEVICE_UUID, TOKEN, FakeDeviceServer, fake_server

from agent.config import AgentConfig
from agent.daemon import Agent
from agent.process import kill_process_group, process_start_ticks
from agent.recovery import AGENT_RESTARTED
from agent.state import JobState, current_boot_id


@pytest.fixture
def fake():
    with fake_server() as server:
        yield server


def make_agent(fake: FakeDeviceServer, tmp_path: Path, **overrides) -> Agent:
    values = {
        "server_url": fake.url, "device_uuid": DEVICE_UUID, "token": TOKEN,
        "state_dir": str(tmp_path / "state"), "handler_dir": str(tmp_path / "handlers"),
        "poll_interval_s": 30.0, "cancel_check_s": 0.3, **overrides,
    }
    return Agent(AgentConfig(**values))


def touch_document(*paths: Path, include_stdout: bool = False) -> dict:
    steps = [{"name": f"touch {p.name}", "type": "runCommand", "input": {"command": f"touch,{p}"}}
             for p in paths]
    return {"version": "1.0", "includeStdOut": include_stdout, "steps": steps}


def then_touch(first_command: str, marker: Path, first_name: str = "first") -> dict:
    """A document whose first step runs ``first_command`` and whose second touches ``marker``."""
    return {"version": "1.0", "steps": [
        {"name": first_name, "type": "runCommand", "input": {"command": first_command}},
        {"name": "after", "type": "runCommand", "input": {"command": f"touch,{marker}"}},
    ]}


def test_a_polled_job_runs_and_reports_progress_then_its_result(fake, tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    job_id = fake.add_job(touch_document(a, b))
    agent = make_agent(fake, tmp_path)
    assert agent.poller.poll_once() == 0.0  # a job ran: poll again at once
    assert a.exists() and b.exists()
    assert fake.statuses(job_id) == ["IN_PROGRESS", "IN_PROGRESS", "IN_PROGRESS", "SUCCEEDED"]
    progress = fake.reports_for(job_id)[2]
    assert progress["executed_steps"] == 2
    assert progress["status_details"]["progress"] == "2/2"
    final = fake.reports_for(job_id)[-1]
    assert final["exit_code"] == 0 and final["executed_steps"] == 2
    assert not (tmp_path / "state" / "current-job.json").exists()
    assert list((tmp_path / "state" / "outbox").iterdir()) == []


def test_an_invalid_document_is_rejected_without_running_or_starting(fake, tmp_path):
    job_id = fake.add_job({"version": "1.0", "steps": [{"name": "x", "type": "nope"}]})
    make_agent(fake, tmp_path).poller.poll_once()
    assert fake.statuses(job_id) == ["REJECTED"]
    assert "steps.0.type" in fake.reports_for(job_id)[0]["reason"]


@pytest.mark.parametrize("step_type", [[], {}])
def test_a_step_type_that_is_not_a_string_is_rejected_once(fake, tmp_path, step_type):
    job_id = fake.add_job({"version": "1.0", "steps": [
        {"name": "x", "type": step_type, "input": {"command": "true"}}]})
    agent = make_agent(fake, tmp_path)
    agent.poller.poll_once()
    agent.poller.poll_once()
    assert fake.statuses(job_id) == ["REJECTED"]
    assert "type" in fake.reports_for(job_id)[0]["reason"]


def test_the_wait_honours_the_longer_of_local_interval_and_poll_after_seconds(fake, tmp_path):
    fake.poll_after_s = 100
    agent = make_agent(fake, tmp_path, poll_interval_s=10.0)
    assert 80 <= agent.poller.poll_once() <= 120
    fake.poll_after_s = 2
    assert 8 <= agent.poller.poll_once() <= 12


def test_errors_back_off_exponentially_and_recover(fake, tmp_path):
    agent = make_agent(fake, tmp_path)
    fake.down = True
    delays = [agent.poller.poll_once() for _ in range(6)]
    assert all(0.5 <= d <= 1 for d in delays[:1])
    assert all(16 <= d <= 32 for d in delays[5:])
    fake.down = False
    assert agent.poller.poll_once() >= 24  # the ordinary interval again
    assert agent.poller.backoff.attempts == 0


@pytest.mark.parametrize("answer", [
    (200, b"<html>oops</html>"), (200, b"[1, 2]"), (200, b'{"jobId": "not-a-uuid"}'),
    (200, b'{"jobId": 5, "jobDocument": null}'), (404, b"not json"), (401, b"{}"),
])
def test_bad_answers_never_crash_the_loop(fake, tmp_path, answer):
    fake.canned.append(answer)
    agent = make_agent(fake, tmp_path)
    assert 0 < agent.poller.poll_once() <= 1  # backed off
    job_id = fake.add_job(touch_document(tmp_path / "later"))
    agent.poller.poll_once()
    assert fake.statuses(job_id)[-1] == "SUCCEEDED"


def once_started(fake: FakeDeviceServer, job_id: str, action, *args) -> None:
    """Call ``action(*args)`` as soon as the agent has reported the job IN_PROGRESS (while its
    first step runs), from a thread of its own: a timer set from the start raced the agent's
    start-up on a loaded machine."""

    def wait_then_act() -> None:
        deadline = time.monotonic() + 30
        while "IN_PROGRESS" not in fake.statuses(job_id) and time.monotonic() < deadline:
            time.sleep(0.005)
        action(*args)

    threading.Thread(target=wait_then_act, daemon=True).start()


def test_a_job_canceled_during_a_long_step_is_killed_and_not_reported(fake, tmp_path):
    after = tmp_path / "after"
    job_id = fake.add_job(then_touch("sleep,60", after))
    agent = make_agent(fake, tmp_path)
    threading.Timer(1.0, fake.set_status, (job_id, "CANCELED")).start()
    started = time.monotonic()
    agent.poller.poll_once()
    assert time.monotonic() - started < 5
    assert not after.exists()
    assert fake.statuses(job_id) == ["IN_PROGRESS"]
    assert not (tmp_path / "state" / "current-job.json").exists()
    assert list((tmp_path / "state" / "outbox").iterdir()) == []


def test_a_cancel_learnt_from_a_progress_report_stops_before_the_next_step(fake, tmp_path):
    after = tmp_path / "after"
    job_id = fake.add_job(then_touch("sleep,0.5", after))
    agent = make_agent(fake, tmp_path, cancel_check_s=60.0)
    once_started(fake, job_id, fake.set_status, job_id, "CANCELED")
    agent.poller.poll_once()
    assert not after.exists()
    assert fake.statuses(job_id) == ["IN_PROGRESS"]


def test_a_result_waits_in_the_outbox_while_the_server_is_down_and_survives_a_restart(
    fake, tmp_path
):
    marker = tmp_path / "ran"
    job_id = fake.add_job(then_touch("sleep,0.5", marker))
    agent = make_agent(fake, tmp_path)
    once_started(fake, job_id, setattr, fake, "down", True)
    agent.poller.poll_once()
    assert marker.exists()
    outbox = list((tmp_path / "state" / "outbox").glob("*.json"))
    assert len(outbox) == 1
    assert json.loads(outbox[0].read_text())["body"]["status"] == "SUCCEEDED"
    assert agent.poller.poll_once() > 0  # still down: backs off, keeps the report

    fake.down = False
    marker.unlink()
    restarted = make_agent(fake, tmp_path)  # a new process: same state dir, nothing in memory
    restarted.poller.poll_once()
    assert fake.statuses(job_id) == ["IN_PROGRESS", "SUCCEEDED"]
    assert not marker.exists()  # delivered, not run again
    assert list((tmp_path / "state" / "outbox").glob("*.json")) == []
    restarted.poller.poll_once()
    assert fake.statuses(job_id).count("SUCCEEDED") == 1


def _cut_short(tmp_path: Path, job_id: str, doc: dict, running: dict | None, done: int) -> None:
    """The state file an agent leaves when it dies in the middle of ``doc``."""
    state = JobState(tmp_path / "state")
    from agent.engine import Progress

    steps = [{"name": s["name"], "exit_code": 0, "outcome": "succeeded"} for s in doc["steps"]]
    progress = Progress(next_index=done, executed_steps=done, steps=steps[:done])
    state.begin(job_id, 1, "cut", doc, progress)
    if running is not None:
        state.step_starting(progress, {"name": running["name"]}, running["reboot"])
        record = json.loads(state.path.read_text())
        record["running"]["boot_id"] = running["boot_id"]
        state.path.write_text(json.dumps(record))


def test_an_agent_restarted_mid_step_reports_failed_and_never_reruns(fake, tmp_path):
    first, second = tmp_path / "first", tmp_path / "second"
    doc = touch_document(first, second)
    job_id = fake.add_job(doc, status="IN_PROGRESS")
    _cut_short(tmp_path, job_id, doc, {"name": "touch first", "reboot": False,
                                        "boot_id": current_boot_id()}, done=0)
    agent = make_agent(fake, tmp_path)
    agent.runner.recover()
    assert fake.statuses(job_id) == ["FAILED"]
    report = fake.reports_for(job_id)[0]
    assert report["reason"].startswith(AGENT_RESTARTED)
    assert report["failed_step"] == "touch first"
    agent.poller.poll_once()
    assert not first.exists() and not second.exists()


def test_a_reboot_step_that_rebooted_resumes_with_the_next_step(fake, tmp_path):
    after = tmp_path / "after"
    doc = then_touch("reboot", after, first_name="Reboot")
    job_id = fake.add_job(doc, status="IN_PROGRESS")
    _cut_short(tmp_path, job_id, doc, {"name": "Reboot", "reboot": True,
                                        "boot_id": "an-earlier-boot"}, done=0)
    agent = make_agent(fake, tmp_path)
    agent.runner.recover()
    assert after.exists()
    final = fake.reports_for(job_id)[-1]
    assert final["status"] == "SUCCEEDED"
    assert final["executed_steps"] == 2
    assert final["status_details"]["steps"][0]["outcome"] == "succeeded (system rebooted)"


def test_a_reboot_step_as_the_last_step_succeeds_after_the_reboot(fake, tmp_path):
    doc = {"version": "1.0", "steps": [
        {"name": "Reboot", "type": "runCommand", "input": {"command": "systemctl,reboot"}},
    ]}
    job_id = fake.add_job(doc, status="IN_PROGRESS")
    _cut_short(tmp_path, job_id, doc, {"name": "Reboot", "reboot": True,
                                        "boot_id": "an-earlier-boot"}, done=0)
    make_agent(fake, tmp_path).runner.recover()
    assert fake.statuses(job_id)[-1] == "SUCCEEDED"


def test_a_reboot_step_without_a_reboot_fails_on_restart(fake, tmp_path):
    doc = {"version": "1.0", "steps": [
        {"name": "Reboot", "type": "runCommand", "input": {"command": "reboot"}},
    ]}
    job_id = fake.add_job(doc, status="IN_PROGRESS")
    _cut_short(tmp_path, job_id, doc, {"name": "Reboot", "reboot": True,
                                        "boot_id": current_boot_id()}, done=0)
    make_agent(fake, tmp_path, reboot_wait_s=0.2).runner.recover()
    assert fake.statuses(job_id) == ["FAILED"]
    assert "did not reboot within 0.2 s" in fake.reports_for(job_id)[0]["reason"]


def test_an_in_progress_job_this_agent_has_no_record_of_is_failed_not_rerun(fake, tmp_path):
    marker = tmp_path / "ran"
    job_id = fake.add_job(touch_document(marker), status="IN_PROGRESS")
    make_agent(fake, tmp_path).poller.poll_once()
    assert not marker.exists()
    assert fake.statuses(job_id) == ["FAILED"]
    assert AGENT_RESTARTED in fake.reports_for(job_id)[0]["reason"]


def test_a_job_handed_out_again_after_its_result_was_delivered_is_not_rerun(fake, tmp_path):
    marker = tmp_path / "ran"
    job_id = fake.add_job(touch_document(marker))
    agent = make_agent(fake, tmp_path)
    agent.poller.poll_once()
    marker.unlink()
    fake.set_status(job_id, "QUEUED")  # a confused server hands it out again
    assert agent.poller.poll_once() > 0
    assert not marker.exists()


def test_stop_interrupts_a_running_step_and_keeps_the_job_for_the_next_start(fake, tmp_path):
    doc = {"version": "1.0", "steps": [
        {"name": "long", "type": "runCommand", "input": {"command": "sleep,60"}},
    ]}
    job_id = fake.add_job(doc)
    agent = make_agent(fake, tmp_path)
    loop = threading.Thread(target=agent.run)
    loop.start()
    deadline = time.monotonic() + 5
    while fake.statuses(job_id) != ["IN_PROGRESS"] and time.monotonic() < deadline:
        time.sleep(0.05)
    agent.stop()
    loop.join(5)
    assert not loop.is_alive()
    assert (tmp_path / "state" / "current-job.json").exists()
    restarted = make_agent(fake, tmp_path)
    restarted.runner.recover()
    assert fake.statuses(job_id)[-1] == "FAILED"
    assert "'long' was interrupted" in fake.reports_for(job_id)[-1]["reason"]


def test_a_step_left_running_by_a_dead_agent_is_killed_on_restart(fake, tmp_path):
    doc = touch_document(tmp_path / "never")
    job_id = fake.add_job(doc, status="IN_PROGRESS")
    _cut_short(tmp_path, job_id, doc, {"name": "touch never", "reboot": False,
                                        "boot_id": current_boot_id()}, done=0)
    leftover = subprocess.Popen(["sleep", "300"], start_new_session=True)
    other = subprocess.Popen(["sleep", "300"], start_new_session=True)
    try:
        state = JobState(tmp_path / "state")
        state.load()
        state.step_process_started(leftover.pid)
        make_agent(fake, tmp_path).runner.recover()
        assert leftover.wait(5) == -signal.SIGKILL
        assert fake.statuses(job_id) == ["FAILED"]
        # A pid that now belongs to a process started later is left alone.
        assert not kill_process_group(other.pid, process_start_ticks(other.pid) - 1)
        assert other.poll() is None
    finally:
        for process in (leftover, other):
            process.kill()
            process.wait()


def test_an_unreadable_job_record_is_set_aside_and_the_agent_goes_on(fake, tmp_path):
    state_dir = tmp_path / "state"
    state_dir.mkdir()
    (state_dir / "current-job.json").write_text('{"written": "by something else"}')
    job_id = fake.add_job(touch_document(tmp_path / "ran"))
    make_agent(fake, tmp_path).poller.poll_once()
    assert (state_dir / "current-job.json.corrupt").exists()
    assert fake.statuses(job_id)[-1] == "SUCCEEDED"


def test_a_record_with_unreadable_progress_fails_its_job_with_a_reason(fake, tmp_path):
    doc = touch_document(tmp_path / "never")
    job_id = fake.add_job(doc, status="IN_PROGRESS")
    _cut_short(tmp_path, job_id, doc, None, done=0)
    path = tmp_path / "state" / "current-job.json"
    path.write_text(path.read_text().replace('"next_index": 0', '"next_index": "zero"'))
    make_agent(fake, tmp_path).runner.recover()
    assert fake.statuses(job_id) == ["FAILED"]
    assert "progress record was unreadable" in fake.reports_for(job_id)[0]["reason"]


def test_a_nudge_polls_at_once_and_a_flood_of_nudges_does_not_flood_the_server(fake, tmp_path):
    agent = make_agent(fake, tmp_path)  # polls every 30 s on its own
    loop = threading.Thread(target=agent.run)
    loop.start()
    try:
        wait = time.monotonic() + 5
        while fake.polls < 1 and time.monotonic() < wait:
            time.sleep(0.01)
        time.sleep(0.3)
        job_id = fake.add_job(touch_document(tmp_path / "nudged"))
        agent.poller.nudge()
        # Far below the 30 s poll interval, with room for a loaded machine.
        deadline = time.monotonic() + 3
        while not (tmp_path / "nudged").exists() and time.monotonic() < deadline:
            time.sleep(0.01)
        assert (tmp_path / "nudged").exists(), "a nudge did not make the agent poll at once"
        time.sleep(0.3)
        polls_before = fake.polls
        for _ in range(100):  # 100 nudges over a second
            agent.poller.nudge()
            time.sleep(0.01)
        time.sleep(0.3)
        assert 2 <= fake.polls - polls_before <= 7
        assert fake.statuses(job_id)[-1] == "SUCCEEDED"
    finally:
        agent.stop()
        loop.join(5)


def test_a_nudged_poll_asks_for_a_fresh_answer_and_a_timed_one_does_not(fake, tmp_path):
    agent = make_agent(fake, tmp_path)  # polls every 30 s on its own
    loop = threading.Thread(target=agent.run)
    loop.start()
    try:
        deadline = time.monotonic() + 5
        while fake.polls < 1 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert (fake.polls, fake.fresh_polls) == (1, 0)
        agent.poller.nudge()
        deadline = time.monotonic() + 5
        while fake.polls < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert (fake.polls, fake.fresh_polls) == (2, 1)
    finally:
        agent.stop()
        loop.join(5)


def _run_until_reboot_wait(fake, tmp_path, doc: dict, boot_id_file: Path, **overrides):
    """Run ``doc`` in an agent until it waits for the system to go down, then stop the agent."""
    job_id = fake.add_job(doc)
    agent = make_agent(fake, tmp_path, boot_id_file=str(boot_id_file), **overrides)
    loop = threading.Thread(target=agent.run)
    loop.start()
    state = tmp_path / "state" / "current-job.json"
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        record = json.loads(state.read_text()) if state.exists() else {}
        if (record.get("running") or {}).get("reboot") and fake.statuses(job_id):
            break
        time.sleep(0.05)
    time.sleep(0.3)  # the reboot step's process has exited; the agent is waiting
    agent.stop()
    loop.join(5)
    assert not loop.is_alive()
    return job_id, json.loads(state.read_text())


@pytest.mark.parametrize("reboot_step", [
    {"name": "Reboot", "type": "runCommand", "input": {"command": "true"}, "rebootsDevice": True},
    {"name": "Reboot", "type": "runHandler", "input": {"handler": "reboot.sh"}},
], ids=["marked", "reboot-handler"])
def test_a_reboot_step_is_recorded_and_a_new_boot_id_finishes_the_job(fake, tmp_path, reboot_step):
    boot_id = tmp_path / "boot_id"
    boot_id.write_text("boot-1\n")
    (tmp_path / "handlers").mkdir()
    handler = tmp_path / "handlers" / "reboot"
    handler.write_text("#!/bin/sh\nexit 0\n")
    handler.chmod(0o700)
    after = tmp_path / "after"
    doc = {"version": "1.0", "steps": [
        reboot_step,
        {"name": "after", "type": "runCommand", "input": {"command": f"touch,{after}"}},
    ]}
    job_id, record = _run_until_reboot_wait(fake, tmp_path, doc, boot_id, reboot_wait_s=60.0)
    assert record["running"]["boot_id"] == "boot-1"
    assert fake.statuses(job_id) == ["IN_PROGRESS"] and not after.exists()
    boot_id.write_text("boot-2\n")
    make_agent(fake, tmp_path, boot_id_file=str(boot_id)).runner.recover()
    assert after.exists()
    final = fake.reports_for(job_id)[-1]
    assert (final["status"], final["executed_steps"]) == ("SUCCEEDED", 2)
    assert final["status_details"]["steps"][0]["outcome"] == "succeeded (system rebooted)"


def test_a_reboot_step_on_the_same_boot_waits_out_the_timeout_then_fails(fake, tmp_path):
    boot_id = tmp_path / "boot_id"
    boot_id.write_text("boot-1\n")
    after = tmp_path / "after"
    doc = {"version": "1.0", "steps": [
        {"name": "Reboot", "type": "runCommand", "input": {"command": "true"},
         "rebootsDevice": True},
        {"name": "after", "type": "runCommand", "input": {"command": f"touch,{after}"}},
    ]}
    job_id, record = _run_until_reboot_wait(fake, tmp_path, doc, boot_id, reboot_wait_s=3.0)
    restarted = make_agent(fake, tmp_path, boot_id_file=str(boot_id), reboot_wait_s=3.0)
    started = time.monotonic()
    restarted.runner.recover()
    waited = time.monotonic() - started
    assert 0.5 < waited < 3.5  # what was left of the 3 s since the step started
    final = fake.reports_for(job_id)[-1]
    assert final["status"] == "FAILED" and not after.exists()
    assert "did not reboot within 3 s" in final["reason"]
    assert "boot id did not change" in final["reason"]
