"""Staged rollouts with real ``jobs-agent`` processes, the real API (gunicorn), a Celery worker
and beat: canaries first, gates that stop a bad job, and the hands of an operator.

A step succeeds on a device whose $DEVICE_HOME holds a file ``ok`` and fails elsewhere, so a
test chooses which devices fail by where it puts that file.
"""

from __future__ import annotations

from dataclasses import replace

import psycopg
import pytest
from job_rows import fan_out
from processes import wait_until
from test_agent_e2e import Fleet
from test_device_client_documents import (
    REBOOT_DOCUMENT_STEPS,
    fake_system_commands,
    install_standard_library,
    start_reboot_agent,
)

from dispatcher import db
from dispatcher.jobs import reports
from dispatcher.jobs.create import create_execution
from dispatcher.outcome import Outcome
from dispatcher.sender import carry_out, deliver

pytestmark = pytest.mark.slow

OK_DOCUMENT = {"version": "1.0", "steps": [
    {"name": "Check", "type": "runCommand", "input": {"command": "sh,-c,test -e $DEVICE_HOME/ok"}}]}
CANARY_FILTER = {"canary": True}


@pytest.fixture
def fleet(settings, server_processes, tmp_path) -> Fleet:
    """The API, a worker and a beat whose gate sweep runs every second."""
    quick = replace(settings, stage_gate_sweep_interval_s=1, policy_sweep_interval_s=1)
    fleet = Fleet(quick, server_processes, tmp_path)
    server_processes.start_beat(fleet.settings)
    return fleet


def register(fleet: Fleet, name: str, *, canary: bool = False, ok: bool = True) -> dict:
    device = fleet.call("POST", "/devices", {"device_name": name, "device_type": "e2e-pi",
                                             "attributes": {"canary": canary}}, expect=201)
    device["home"] = fleet.tmp_path / name
    device["home"].mkdir()
    if ok:
        (device["home"] / "ok").touch()
    return device


def rollout(fleet: Fleet, job_id: str) -> dict:
    return fleet.detail(job_id)["rollout"]


def wait_for_rollout(fleet: Fleet, job_id: str, state: str, timeout_s: float = 60.0) -> dict:
    return wait_until(lambda: (r := rollout(fleet, job_id))["state"] == state and r, timeout_s,
                      f"rollout {state}")


def device_status(fleet: Fleet, job_id: str, device: dict) -> str:
    rows = fleet.call("GET", f"/jobs/executions/{job_id}/devices?limit=500")["device_statuses"]
    return next(r["status"] for r in rows if r["device_uuid"] == str(device["uuid"]))


def wait_for_devices(fleet: Fleet, job_id: str, devices: list[dict], status: str,
                     timeout_s: float = 60.0) -> None:
    wait_until(lambda: all(device_status(fleet, job_id, d) == status for d in devices),
               timeout_s, f"devices {status}")


def first_event_ids(job_id: str) -> tuple[dict[str, int], dict[str, int]]:
    """The id of each job event (first of its kind), and of each device's first transition."""
    with db.pool().connection() as conn:
        rows = conn.execute("SELECT id, action, device_uuid FROM job_events WHERE job_id = %s"
                            " ORDER BY id", (job_id,)).fetchall()
    jobs: dict[str, int] = {}
    devices: dict[str, int] = {}
    for row in rows:
        if row["device_uuid"] is None:
            jobs.setdefault(row["action"], row["id"])
        elif row["action"] == "device_job.status_changed":
            devices.setdefault(str(row["device_uuid"]), row["id"])
    return jobs, devices


def no_job_for(fleet: Fleet, device: dict) -> bool:
    status, answer = fleet.http.request(
        "GET", f"/api/v1/devices/{device['uuid']}/jobs/next", None,
        {"Authorization": f"Bearer {device['device_token']}", "Cache-Control": "no-cache"})
    return status == 200 and "jobId" not in answer


def test_failing_canaries_pause_the_rollout_and_resume_releases_the_rest(fleet):
    canaries = [register(fleet, f"canary-{i}", canary=True, ok=False) for i in range(2)]
    rest = [register(fleet, f"pi-{i}") for i in range(3)]
    for device in canaries + rest:
        fleet.start_agent(device)
    job_id = fleet.execute({"job_document": OK_DOCUMENT, "target_type": "all", "stages": [
        {"name": "canary", "count": 2, "target_filter": CANARY_FILTER,
         "gate": {"min_completed": 2, "max_failure_percent": 0}},
        {"name": "rest"}]})

    paused = wait_for_rollout(fleet, job_id, "PAUSED")
    assert paused["reason"] == "gate failed: 2 of 2 devices of stage canary failed (> 0%)"
    assert [(s["state"], s["failed"], s["queued"]) for s in paused["stages"]] == [
        ("FAILED", 2, 0), ("PENDING", 0, 3)]
    assert all(no_job_for(fleet, device) for device in rest)
    assert {device_status(fleet, job_id, d) for d in rest} == {"QUEUED"}

    resumed = fleet.call("POST", f"/jobs/executions/{job_id}/resume")
    assert resumed["stages"][0]["acknowledged_failures"] == 2
    wait_for_devices(fleet, job_id, rest, "SUCCEEDED")
    done = fleet.wait_for_job(job_id, "FAILED")
    assert done["rollout"]["state"] == "FINISHED"
    assert [s["state"] for s in done["rollout"]["stages"]] == ["FAILED", "PASSED"]
    # No device of the later stage did anything before the rollout was resumed.
    jobs, devices = first_event_ids(job_id)
    assert all(devices[str(d["uuid"])] > jobs["job.rollout_resumed"] for d in rest)


def test_approve_then_promote_past_a_soak(fleet):
    devices = [register(fleet, f"pi-{i}") for i in range(3)]
    for device in devices:
        fleet.start_agent(device)
    job_id = fleet.execute({"job_document": OK_DOCUMENT, "target_type": "all",
                            "requires_approval": True, "stages": [
                                {"name": "canary", "count": 1, "gate": {"soak_seconds": 3600}},
                                {"name": "rest"}]})
    assert rollout(fleet, job_id)["state"] == "WAITING_FOR_APPROVAL"
    wait_until(lambda: fleet.detail(job_id)["job"]["fanout_status"] == "DONE",
               what="the fan-out")
    assert all(no_job_for(fleet, device) for device in devices)

    fleet.call("POST", f"/jobs/executions/{job_id}/approve")
    soaking = wait_until(
        lambda: (r := rollout(fleet, job_id))["stages"][0]["soak_until"] is not None and r,
        60, "the canary to soak")
    assert [s["state"] for s in soaking["stages"]] == ["RELEASED", "PENDING"]
    assert soaking["stages"][0]["succeeded"] == 1

    promoted = fleet.call("POST", f"/jobs/executions/{job_id}/promote")
    assert [s["state"] for s in promoted["stages"]] == ["PROMOTED", "RELEASED"]
    done = fleet.wait_for_job(job_id, "SUCCEEDED", timeout_s=60)
    assert done["rollout"]["state"] == "FINISHED"
    assert done["job"]["succeeded_devices"] == 3


def test_a_silent_canary_times_out_and_fails_its_gate(fleet):
    silent = register(fleet, "silent", canary=True)  # registered, but no agent runs
    rest = register(fleet, "pi-0")
    fleet.start_agent(rest)
    job_id = fleet.execute({"job_document": OK_DOCUMENT, "target_type": "all", "stages": [
        {"name": "canary", "count": 1, "target_filter": CANARY_FILTER,
         "gate": {"stage_timeout_minutes": 1}},
        {"name": "rest"}]})
    paused = wait_for_rollout(fleet, job_id, "PAUSED", timeout_s=150)
    assert paused["reason"] == "gate failed: 1 of 1 devices of stage canary failed (> 0%)"
    assert device_status(fleet, job_id, silent) == "TIMED_OUT"
    assert device_status(fleet, job_id, rest) == "QUEUED"


def test_a_reboot_canary_passes_only_after_its_reboot(fleet, tmp_path):
    install_standard_library(fleet.settings)
    canary = register(fleet, "pi-reboot", canary=True)
    rest = register(fleet, "pi-0")
    agents = {}
    for device in (canary, rest):
        fake_system_commands(tmp_path / f"fakes-{device['device_name']}")
        (device["home"] / "boot_id").write_text("boot-one\n")
        agents[device["device_name"]] = start_reboot_agent(
            fleet, device, tmp_path / f"fakes-{device['device_name']}", reboot_wait_s=120)
    job_id = fleet.execute({"job_document": {"version": "1.0", "steps": REBOOT_DOCUMENT_STEPS},
                            "target_type": "all", "stages": [
                                {"name": "canary", "count": 1, "target_filter": CANARY_FILTER},
                                {"name": "rest"}]})
    wait_until(lambda: "waiting for the system to go down" in agents["pi-reboot"].log_text(),
               60, "the canary to reboot")
    assert device_status(fleet, job_id, canary) == "IN_PROGRESS"
    agents["pi-reboot"].stop()  # the device goes down with its canary IN_PROGRESS
    shown = rollout(fleet, job_id)
    assert [(s["state"], s["in_progress"]) for s in shown["stages"]] == [
        ("RELEASED", 1), ("PENDING", 0)]
    assert device_status(fleet, job_id, rest) == "QUEUED"
    come_back(fleet, canary, tmp_path)
    wait_until(lambda: rollout(fleet, job_id)["stages"][0]["state"] == "PASSED", 90,
               "the canary's stage to pass")
    # The rest reboots in its turn and is counted once it is back.
    wait_until(lambda: "waiting for the system to go down" in agents["pi-0"].log_text(), 60,
               what="the second device to reboot")
    jobs, devices = first_event_ids(job_id)
    assert devices[str(rest["uuid"])] > jobs["job.stage_passed"]
    agents["pi-0"].stop()
    come_back(fleet, rest, tmp_path)
    done = fleet.wait_for_job(job_id, "SUCCEEDED", timeout_s=90)
    assert [s["state"] for s in done["rollout"]["stages"]] == ["PASSED", "PASSED"]


def come_back(fleet: Fleet, device: dict, tmp_path) -> None:
    """The device boots again (a new boot id) and its agent starts."""
    (device["home"] / "boot_id").write_text("boot-two\n")
    start_reboot_agent(fleet, device, tmp_path / f"fakes-{device['device_name']}",
                       reboot_wait_s=120)


def test_a_continuous_job_puts_a_late_device_in_its_last_stage(fleet):
    devices = [register(fleet, f"pi-{i}") for i in range(2)]
    for device in devices:
        fleet.start_agent(device)
    job_id = fleet.execute({"job_document": OK_DOCUMENT, "target_type": "all",
                            "execution_type": "continuous", "stages": [
                                {"name": "canary", "count": 1, "gate": {"on_success": "pause"}},
                                {"name": "rest"}]})
    wait_for_rollout(fleet, job_id, "PAUSED")
    late = register(fleet, "late")
    fleet.start_agent(late)
    wait_until(lambda: rollout(fleet, job_id)["stages"][1]["size"] == 2,
               what="the late device to join the last stage")
    assert no_job_for(fleet, late)
    fleet.call("POST", f"/jobs/executions/{job_id}/resume")
    wait_for_devices(fleet, job_id, [devices[1], late], "SUCCEEDED")
    with db.pool().connection() as conn:
        stage = conn.execute("SELECT stage FROM device_job_status WHERE job_id = %s"
                             " AND device_uuid = %s", (job_id, late["uuid"])).fetchone()["stage"]
    assert stage == 1


def test_a_worker_killed_while_releasing_a_stage_leaves_each_device_released_once(
        settings, server_processes):
    """A stage of 1,000 devices released one row per chunk, its worker killed half-way: the
    gate sweep gives the release to another worker, and every row is released once."""
    slow = replace(settings, fanout_chunk_size=1, stage_gate_sweep_interval_s=1)
    db.configure(slow)
    n = 1_000
    with psycopg.connect(slow.database_url, autocommit=True) as conn:
        conn.execute("INSERT INTO devices (uuid, device_name, token_hash)"
                     " SELECT u, 'pi-' || i, decode(md5(u::text), 'hex')"
                     " FROM (SELECT gen_random_uuid() AS u, i FROM generate_series(1, %s) i) d",
                     (n,))
    big_chunks = replace(slow, fanout_chunk_size=10_000)
    body = {"job_name": "big", "job_document": OK_DOCUMENT, "target_type": "all",
            "stages": [{"name": "canary", "count": 1}, {"name": "rest"}]}
    job = deliver(create_execution(body, "admin:test", big_chunks), big_chunks)
    job_id = job["job_id"]
    fan_out(job_id, replace(slow, fanout_chunk_size=10_000))
    worker = server_processes.start_worker(slow)
    with psycopg.connect(slow.database_url) as conn:
        canary = conn.execute("SELECT device_uuid FROM device_job_status WHERE job_id = %s"
                              " AND stage = 0", (job_id,)).fetchone()[0]
    deliver(reports.report_status(canary, job_id, {"status": "SUCCEEDED"}, 65536, "admin:test"),
            slow)
    carry_out(Outcome(gate_checks={job_id}), slow)

    def released() -> int:
        with psycopg.connect(slow.database_url) as conn:
            return conn.execute("SELECT count(*) FROM device_job_status WHERE job_id = %s"
                                " AND stage = 1 AND released_at IS NOT NULL",
                                (job_id,)).fetchone()[0]

    wait_until(lambda: released() > 100, 60, "the release to start")
    worker.kill()
    cut_at = released()
    assert cut_at < n - 1, "the release finished before the worker was killed"
    with psycopg.connect(slow.database_url) as conn:
        before = dict(conn.execute("SELECT device_uuid, released_at FROM device_job_status"
                                   " WHERE job_id = %s AND released_at IS NOT NULL",
                                   (job_id,)).fetchall())
        conn.execute("UPDATE job_stages SET release_progress_at = now() - interval '1 hour'"
                     " WHERE job_id = %s", (job_id,))
        conn.commit()
    server_processes.start_worker(slow)
    server_processes.start_beat(slow)
    wait_until(lambda: released() == n - 1, 180, "every row of the stage released")
    with psycopg.connect(slow.database_url) as conn:
        after = dict(conn.execute("SELECT device_uuid, released_at FROM device_job_status"
                                  " WHERE job_id = %s AND device_uuid = ANY(%s)",
                                  (job_id, list(before))).fetchall())
        rows = conn.execute("SELECT count(*), count(DISTINCT device_uuid) FROM device_job_status"
                            " WHERE job_id = %s", (job_id,)).fetchone()
    assert after == before  # rows released before the kill were not released again
    assert rows == (n, n)


def test_the_devices_of_a_released_stage_are_nudged(settings, server_processes, tmp_path):
    """Agents that poll every 300 s get a released stage's job within seconds: only the MQTT
    nudge of the release can tell them."""
    fleet = Fleet(replace(settings, stage_gate_sweep_interval_s=1), server_processes, tmp_path,
                  mqtt=True)
    devices = [register(fleet, f"pi-{i}") for i in range(3)]
    for device in devices:
        fleet.start_agent(device, poll_interval_s=300, mqtt=True)
    job_id = fleet.execute({"job_document": OK_DOCUMENT, "target_type": "all", "stages": [
        {"name": "canary", "count": 1, "gate": {"on_success": "pause"}}, {"name": "rest"}]})
    wait_for_rollout(fleet, job_id, "PAUSED")
    rest = [d for d in devices if device_status(fleet, job_id, d) == "QUEUED"]
    assert len(rest) == 2
    fleet.call("POST", f"/jobs/executions/{job_id}/resume")
    wait_for_devices(fleet, job_id, rest, "SUCCEEDED", timeout_s=60)
