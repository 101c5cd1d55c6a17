"""The agent's durable files: output tails, the outbox, the job state and recovery decisions."""

from __future__ import annotations

import os
import stat

from agent.engine import FAILED, Progress
from agent.outbox import Outbox
from agent.output import OutputTail
from agent.recovery import AGENT_RESTARTED, recovery_plan
from agent.state import JobState
from agent.storage import atomic_write_json, read_json


def test_an_output_tail_keeps_only_the_last_bytes_however_much_is_written():
    tail = OutputTail(1000)
    for i in range(100_000):
        tail.write(f"line {i}\n".encode())
    assert len(tail) == 1000
    assert tail.text().endswith("line 99999\n")
    assert tail.truncated
    assert tail.total_bytes > 1_000_000
    tail.write(b"x" * 5000)
    assert tail.text() == "x" * 1000


def test_a_tail_cut_inside_a_character_still_decodes():
    tail = OutputTail(3)
    tail.write("é€".encode())  # 2 + 3 bytes: the cap cuts nothing of "€" but all of "é"
    assert tail.text() == "€"
    tail.write(b"a")
    assert tail.text() == "\ufffd\ufffda"
    assert not OutputTail(10).truncated


def test_the_outbox_survives_a_restart_and_lists_oldest_first(tmp_path):
    first = Outbox(tmp_path / "outbox")
    first.put("job-b", 1, {"status": "FAILED"})
    first.put("job-a", 2, {"status": "SUCCEEDED"})
    again = Outbox(tmp_path / "outbox")  # a new process
    pending = again.pending()
    assert [(e.job_id, e.execution_number, e.body["status"]) for e in pending] == [
        ("job-b", 1, "FAILED"), ("job-a", 2, "SUCCEEDED")]
    assert again.has("job-a", 2) and not again.has("job-a", 1)
    again.remove("job-b", 1)
    assert [e.job_id for e in Outbox(tmp_path / "outbox").pending()] == ["job-a"]
    assert Outbox(tmp_path / "outbox").settled("job-b", 1)
    assert not Outbox(tmp_path / "outbox").settled("job-a", 2)


def test_state_files_are_private_and_a_corrupt_one_is_set_aside(tmp_path):
    path = tmp_path / "x.json"
    atomic_write_json(path, {"a": 1})
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert read_json(path) == {"a": 1}
    path.write_text('{"a": ')  # power lost mid-write by something other than us
    assert read_json(path) is None
    assert (tmp_path / "x.json.corrupt").exists()
    assert read_json(path) is None


def test_a_corrupt_outbox_entry_does_not_block_the_others(tmp_path):
    outbox = Outbox(tmp_path / "outbox")
    outbox.put("good", 1, {"status": "SUCCEEDED"})
    (tmp_path / "outbox" / "bad.1.json").write_text("[]")
    assert [e.job_id for e in outbox.pending()] == ["good"]


def test_the_job_state_records_the_running_step(tmp_path):
    state = JobState(tmp_path / "state")
    progress = Progress()
    state.begin("job-1", 1, "name", {"version": "1.0"}, progress)
    state.step_starting(progress, {"name": "Reboot"}, reboot=True)
    record = JobState(tmp_path / "state").load()
    assert record["job_id"] == "job-1"
    assert record["running"]["name"] == "Reboot" and record["running"]["reboot"] is True
    progress.executed_steps = progress.next_index = 1
    state.step_finished(progress)
    assert JobState(tmp_path / "state").load()["running"] is None
    state.clear()
    assert JobState(tmp_path / "state").load() is None
    assert stat.S_IMODE(os.stat(tmp_path / "state").st_mode) == 0o700


def _record(running: dict | None, next_index: int = 1) -> dict:
    return {"progress": {"next_index": next_index, "executed_steps": next_index, "steps": []},
            "running": running}


def test_recovery_after_a_real_reboot_resumes_after_the_reboot_step():
    running = {"name": "Reboot", "reboot": True, "boot_id": "old"}
    progress, result = recovery_plan(_record(running), "new", total_steps=3)
    assert result is None
    assert (progress.next_index, progress.executed_steps) == (2, 2)


def test_recovery_without_a_reboot_fails_the_job_and_names_the_step():
    running = {"name": "Reboot", "reboot": True, "boot_id": "same"}
    progress, result = recovery_plan(_record(running), "same", total_steps=3)
    assert progress is None
    assert result.status == FAILED and "did not reboot" in result.reason
    progress, result = recovery_plan(_record({"name": "Upgrade", "reboot": False}), "x", 3)
    assert result.reason == f"{AGENT_RESTARTED} (step 'Upgrade' was interrupted)"
    assert result.failed_step == "Upgrade"
    assert result.executed_steps == 1


def test_recovery_between_steps_resumes_only_when_every_step_was_done():
    progress, result = recovery_plan(_record(None, next_index=3), "x", total_steps=3)
    assert result is None and progress.next_index == 3
    progress, result = recovery_plan(_record(None, next_index=1), "x", total_steps=3)
    assert result.reason.startswith(AGENT_RESTARTED)
