"""Real `jobs-agent` processes against the real API (gunicorn) and a real Celery worker.

Each agent runs as a separate process with its own state directory, as on a device
(``agent_processes.start_agent``); its job steps write into their device's $DEVICE_HOME.
"""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

import pytest
from agent_processes import start_agent
from json_http import JsonHttp
from processes import ServerProcess, wait_until
from suite_constants import TEST_ADMIN_TOKEN

from dispatcher import db

pytestmark = pytest.mark.slow

ADMIN = {"Authorization": f"Bearer {TEST_ADMIN_TOKEN}"}
AGENT_RESTARTED = "agent restarted while the job was running"


class Fleet:
    """The API, a worker, registered devices and their agent processes, for one test."""

    def __init__(self, settings, server_processes, tmp_path: Path, mqtt: bool = False) -> None:
        self.settings = replace(settings, poll_after_s=1,
                                mqtt_url="mqtt://127.0.0.1:1883" if mqtt else "")
        self.processes = server_processes
        self.tmp_path = tmp_path
        self.worker = server_processes.start_worker(self.settings)
        self.api = server_processes.start_api(self.settings)
        self.http = JsonHttp(self.api.url)
        db.configure(self.settings)

    def call(self, method: str, path: str, body: object = None, expect: int = 200) -> dict:
        status, answer = self.http.request(method, f"/api/v1{path}", body, ADMIN)
        assert status == expect, answer
        return answer

    def register(self, name: str, device_type: str = "e2e-pi") -> dict:
        device = self.call("POST", "/devices", {"device_name": name, "device_type": device_type},
                           expect=201)
        device["home"] = self.tmp_path / name
        device["home"].mkdir()
        return device

    def start_agent(self, device: dict, poll_interval_s: float = 1.0, mqtt: bool = False,
                    cancel_check_s: float = 1.0) -> ServerProcess:
        return start_agent(self.processes, self.api.url, device, device["home"],
                           poll_interval_s, self.settings.mqtt_url if mqtt else "",
                           cancel_check_s=str(cancel_check_s), log_level="DEBUG")

    def execute(self, body: dict) -> str:
        answer = self.call("POST", "/jobs/execute", {"job_name": "e2e", **body}, expect=201)
        return answer["job"]["job_id"]

    def execute_on(self, device: dict, document: dict) -> str:
        return self.execute({"job_document": document, "target_type": "device",
                             "target_devices": [str(device["uuid"])]})

    def detail(self, job_id: str) -> dict:
        return self.call("GET", f"/jobs/executions/{job_id}")

    def device_row(self, job_id: str) -> dict:
        rows = self.detail(job_id)["device_statuses"]
        return rows[0] if rows else {"status": "(not fanned out yet)"}

    def wait_for_status(self, job_id: str, *statuses: str, timeout_s: float = 30.0) -> dict:
        return wait_until(lambda: (row := self.device_row(job_id))["status"] in statuses and row,
                          timeout_s, f"device status in {statuses}")

    def wait_for_job(self, job_id: str, *statuses: str, timeout_s: float = 30.0) -> dict:
        """The execution's detail once its status is one of ``statuses``. A job completes just
        after the commit of its last device's report, so it can lag that row by a moment."""
        return wait_until(lambda: (d := self.detail(job_id))["job"]["status"] in statuses and d,
                          timeout_s, f"job status in {statuses}")


def device_transitions(job_id: str) -> list[tuple[str, str]]:
    """(actor, new status) of every device-row transition of a job, in order."""
    with db.pool().connection() as conn:
        rows = conn.execute(
            "SELECT actor, details->>'to' AS status FROM job_events"
            " WHERE job_id = %s AND action = 'device_job.status_changed' ORDER BY id",
            (job_id,)).fetchall()
    return [(row["actor"], row["status"]) for row in rows]


def pid_alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def shell(name: str, script: str) -> dict:
    return {"name": name, "type": "runCommand", "input": {"command": f"sh,-c,{script}"}}


def long_step_document(after: str = "") -> dict:
    """A step that records its pid in $DEVICE_HOME/pid and sleeps, then one that would run."""
    return {"version": "1.0", "steps": [
        shell("Long", "echo $$ > $DEVICE_HOME/pid; echo run >> $DEVICE_HOME/runs; exec sleep 300"),
        shell("After", f"touch $DEVICE_HOME/after{after}"),
    ]}


def test_a_template_on_three_devices_runs_on_each_agent_and_counts_right(
    settings, server_processes, tmp_path
):
    fleet = Fleet(settings, server_processes, tmp_path)
    devices = [fleet.register(f"pi-{i}") for i in range(3)]
    fleet.register("other-type", device_type="gateway")  # not targeted
    for device in devices:
        fleet.start_agent(device)
    template = fleet.call("POST", "/jobs/templates", {
        "name": "write-greeting", "category": "maintenance",
        "parameters": {"GREETING": "hello"},
        "job_document": {"version": "1.0", "includeStdOut": True, "steps": [
            shell("Write", "echo {{GREETING}} > $DEVICE_HOME/greeting"),
            {"name": "Read", "type": "runCommand", "input": {"command": "cat,/proc/version"}},
        ], "finalStep": shell("Mark", "touch $DEVICE_HOME/final")},
    }, expect=201)
    job_id = fleet.execute({"template_id": template["id"], "target_type": "group",
                            "target_filter": {"device_type": "e2e-pi"},
                            "parameters": {"GREETING": "hi from e2e"}})
    detail = fleet.wait_for_job(job_id, "SUCCEEDED")
    job = detail["job"]
    assert (job["total_devices"], job["succeeded_devices"], job["failed_devices"]) == (3, 3, 0)
    for device in devices:
        assert (device["home"] / "greeting").read_text() == "hi from e2e\n"
        assert (device["home"] / "final").exists()
    rows = {row["device_uuid"]: row for row in detail["device_statuses"]}
    assert set(rows) == {str(d["uuid"]) for d in devices}
    for row in rows.values():
        assert (row["status"], row["exit_code"]) == ("SUCCEEDED", 0)
        assert row["stdout"].startswith("Linux version")
        assert row["executed_steps"] == 3


@pytest.mark.parametrize("mqtt", [False, True], ids=["polling", "mqtt"])
def test_a_forced_cancel_kills_the_running_step_within_seconds(
    settings, server_processes, tmp_path, mqtt
):
    fleet = Fleet(settings, server_processes, tmp_path, mqtt=mqtt)
    device = fleet.register("pi-cancel")
    if mqtt:  # no periodic check for a minute: only the "canceled" nudge can stop it in time
        fleet.start_agent(device, poll_interval_s=300, mqtt=True, cancel_check_s=60)
    else:
        fleet.start_agent(device, cancel_check_s=1)
    job_id = fleet.execute_on(device, long_step_document())
    fleet.wait_for_status(job_id, "IN_PROGRESS")
    pid = int(wait_until(lambda: (device["home"] / "pid").exists()
                         and (device["home"] / "pid").read_text().strip(), what="pid file"))
    assert pid_alive(pid)
    fleet.call("POST", f"/jobs/executions/{job_id}/cancel", {"force": True})
    canceled_at = time.monotonic()
    wait_until(lambda: not pid_alive(pid), timeout_s=10, what="the step to be killed")
    assert time.monotonic() - canceled_at < 5
    time.sleep(1.5)  # the agent would have reported by now
    assert fleet.device_row(job_id)["status"] == "CANCELED"
    assert not (device["home"] / "after").exists()
    assert [s for actor, s in device_transitions(job_id) if actor.startswith("device")] == [
        "IN_PROGRESS"]
    # The agent goes on with the next job.
    next_job = fleet.execute_on(device, {"version": "1.0", "steps": [shell("Ok", "true")]})
    assert fleet.wait_for_status(next_job, "SUCCEEDED", "FAILED")["status"] == "SUCCEEDED"


def test_a_result_produced_while_the_server_is_down_arrives_exactly_once(
    settings, server_processes, tmp_path
):
    fleet = Fleet(settings, server_processes, tmp_path)
    device = fleet.register("pi-outage")
    agent = fleet.start_agent(device)
    job_id = fleet.execute_on(device, {"version": "1.0", "includeStdOut": True, "steps": [
        shell("Wait", "sleep 2"), shell("Finish", "touch $DEVICE_HOME/done; echo finished"),
    ]})
    fleet.wait_for_status(job_id, "IN_PROGRESS")
    fleet.api.stop()
    wait_until(lambda: (device["home"] / "done").exists(), what="the job to finish")
    wait_until(lambda: "final report not delivered" in agent.log_text(), what="a failed send")
    fleet.api.start()
    fleet.http = JsonHttp(fleet.api.url)
    row = fleet.wait_for_status(job_id, "SUCCEEDED", "FAILED")
    assert (row["status"], row["stdout"]) == ("SUCCEEDED", "finished\n")
    time.sleep(2)  # a few more poll rounds: nothing is sent twice
    finals = [s for actor, s in device_transitions(job_id) if s != "IN_PROGRESS"]
    assert finals == ["SUCCEEDED"]
    assert list((device["home"] / "state" / "outbox").glob("*.json")) == []


def test_an_agent_killed_mid_job_and_restarted_ends_the_job_with_a_reason(
    settings, server_processes, tmp_path
):
    fleet = Fleet(settings, server_processes, tmp_path)
    device = fleet.register("pi-crash")
    agent = fleet.start_agent(device)
    job_id = fleet.execute_on(device, long_step_document())
    fleet.wait_for_status(job_id, "IN_PROGRESS")
    pid = int(wait_until(lambda: (device["home"] / "pid").exists()
                         and (device["home"] / "pid").read_text().strip(), what="pid file"))
    state_file = device["home"] / "state" / "current-job.json"
    wait_until(lambda: f'"pid": {pid}' in state_file.read_text(), what="the step on record")
    agent.kill()  # the step runs in its own session: it outlives the agent
    assert pid_alive(pid)
    fleet.start_agent(device)
    row = fleet.wait_for_status(job_id, "FAILED", "SUCCEEDED")
    assert not pid_alive(pid)  # the restarted agent stopped what was left of the step
    assert row["status"] == "FAILED"
    assert row["reason"].startswith(AGENT_RESTARTED)
    assert row["failed_step"] == "Long"
    assert (device["home"] / "runs").read_text() == "run\n"  # not run a second time
    assert not (device["home"] / "after").exists()
    assert fleet.wait_for_job(job_id, "FAILED", "SUCCEEDED")["job"]["status"] == "FAILED"


def test_with_mqtt_a_job_reaches_an_agent_polling_every_300_s_within_a_second(
    settings, server_processes, tmp_path
):
    fleet = Fleet(settings, server_processes, tmp_path, mqtt=True)
    device = fleet.register("pi-mqtt")
    fleet.start_agent(device, poll_interval_s=300, mqtt=True)  # started = subscribed
    time.sleep(1)  # past its first poll: the next one is 300 s away
    job_id = fleet.execute_on(device, {"version": "1.0", "steps": [shell("Ok", "true")]})
    fleet.wait_for_status(job_id, "SUCCEEDED", "FAILED", timeout_s=10)
    with db.pool().connection() as conn:
        delays = conn.execute(
            "SELECT extract(epoch FROM s.started_at - s.queued_at) AS from_queued,"
            " extract(epoch FROM s.started_at - e.queued_at) AS from_execute"
            " FROM device_job_status s JOIN job_executions e USING (job_id)"
            " WHERE s.job_id = %s", (job_id,)).fetchone()
    # From the row's creation (the worker publishes the nudge right after) to the agent's
    # start; the worker's own queueing on a loaded machine is not the agent's to answer for.
    assert delays["from_queued"] < 1.0, (
        f"the job started {delays['from_queued']:.2f} s after it was queued "
        f"({delays['from_execute']:.2f} s after it was executed)"
    )

