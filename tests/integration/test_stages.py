"""Staged rollouts through the API: assignment of devices to stages at fan-out, gates decided
from the stage counters after reports and by the sweep, and pause / resume / promote / approve.

Jobs are executed through the API and fanned out by calling the fan-out itself; a released
stage's rows are released by calling the release a worker would run, so each test drives the
same code as production without waiting for a worker.
"""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from job_rows import QUIET_SETTINGS, Device, fan_out, next_job, release

from api.app import create_app
from dispatcher import db
from dispatcher.fleet.devices import register_device
from dispatcher.fleet.tokens import create_api_token
from dispatcher.maintenance import SWEEPS, stage_gates
from dispatcher.policies import continuous, gates, recurring
from dispatcher.policies import rollout as rollout_rate
from dispatcher.sender import deliver

DOCUMENT = {"version": "1.0", "steps": [
    {"name": "uptime", "type": "runCommand", "input": {"command": "uptime"}}]}
CANARY_REST = [{"name": "canary", "count": 2}, {"name": "ten-percent", "percent": 10},
               {"name": "rest"}]


@pytest.fixture(autouse=True)
def _database(settings) -> None:
    db.configure(settings)


def fleet(n: int, **attributes) -> list[Device]:
    devices = []
    for i in range(n):
        device, token = deliver(register_device(f"pi-{i:03d}", "raspberry-pi",
                                        attributes.get(f"d{i}", {})), QUIET_SETTINGS)
        devices.append(Device(device["uuid"], device["device_name"], token))
    return sorted(devices, key=lambda d: d.uuid)


def execute(client, headers, settings, stages_: list | None, **extra) -> uuid.UUID:
    body = {"job_name": "staged", "job_document": DOCUMENT, "target_type": "all", **extra}
    if stages_ is not None:
        body["stages"] = stages_
    answer = client.post("/api/v1/jobs/execute", json=body, headers=headers)
    assert answer.status_code == 201, answer.get_json()
    job_id = uuid.UUID(answer.get_json()["job"]["job_id"])
    fan_out(job_id, settings)
    return job_id


def rollout(client, headers, job_id) -> dict:
    answer = client.get(f"/api/v1/jobs/executions/{job_id}", headers=headers)
    assert answer.status_code == 200
    return answer.get_json()["rollout"]


def report(client, job_id, device: Device, status: str) -> None:
    answer = client.patch(f"/api/v1/devices/{device.uuid}/jobs/{job_id}/status",
                          json={"status": status}, headers=device.headers)
    assert answer.status_code == 200, answer.get_json()


def act(client, headers, job_id, action: str, code: int = 200) -> dict:
    answer = client.post(f"/api/v1/jobs/executions/{job_id}/{action}", headers=headers)
    assert answer.status_code == code, answer.get_json()
    return answer.get_json()


def release_released_stages(settings, job_id) -> None:
    """What the release worker does for every released stage of the job."""
    for stage in db.all("job_rollout_stages", job_id=job_id):
        if stage["state"] == "RELEASED":
            release(job_id, stage["stage"], settings)


def handed_out(devices: list[Device]) -> set[uuid.UUID]:
    return {d.uuid for d in devices if next_job(d.uuid) is not None}


def stage_of(job_id) -> dict[uuid.UUID, int]:
    with db.pool().connection() as conn:
        rows = conn.execute("SELECT device_uuid, stage FROM device_job_status"
                            " WHERE job_id = %s AND is_latest", (job_id,)).fetchall()
    return {row["device_uuid"]: row["stage"] for row in rows}


def events(job_id, prefix: str = "job.") -> list[tuple[str, dict]]:
    with db.pool().connection() as conn:
        rows = conn.execute("SELECT action, details FROM job_events WHERE job_id = %s"
                            " AND action LIKE %s ORDER BY id", (job_id, prefix + "%")).fetchall()
    return [(row["action"], row["details"]) for row in rows]


def test_devices_are_assigned_to_stages_at_fan_out_and_only_the_first_is_handed_out(
        client, admin_headers, settings):
    devices = fleet(20)
    job_id = execute(client, admin_headers, settings, CANARY_REST)

    assigned = stage_of(job_id)
    # uuid order: the first two are the canaries, then 10% of 20 = 2, then the rest.
    assert [assigned[d.uuid] for d in devices] == [0, 0, 1, 1] + [2] * 16
    assert handed_out(devices) == {devices[0].uuid, devices[1].uuid}
    shown = rollout(client, admin_headers, job_id)
    assert shown["state"] == "RUNNING" and shown["current_stage"] == 0
    assert shown["reason"] == "stage canary released"
    assert [(s["name"], s["size"], s["state"], s["queued"]) for s in shown["stages"]] == [
        ("canary", 2, "RELEASED", 2), ("ten-percent", 2, "PENDING", 2),
        ("rest", 16, "PENDING", 16)]


def test_percent_rounds_up_and_a_stage_filter_chooses_its_devices_first(
        client, admin_headers, settings):
    devices = fleet(15, d7={"canary": True}, d11={"canary": True}, d12={"canary": True})
    job_id = execute(client, admin_headers, settings, [
        {"name": "canary", "count": 2, "target_filter": {"canary": True}},
        {"name": "slice", "percent": 1}, {"name": "rest"}])

    assigned = stage_of(job_id)
    flagged = [d.uuid for d in devices if d.name in ("pi-007", "pi-011", "pi-012")]
    canaries = {u for u, s in assigned.items() if s == 0}
    assert len(canaries) == 2 and canaries <= set(flagged)
    # 1% of 15 rounds up to one device: the first by uuid that is not a canary.
    assert [u for u, s in assigned.items() if s == 1] == [
        next(d.uuid for d in devices if d.uuid not in canaries)]
    assert handed_out(devices) == canaries


def test_failing_canaries_pause_the_rollout_and_no_later_device_gets_the_job(
        client, admin_headers, settings):
    devices = fleet(10)
    job_id = execute(client, admin_headers, settings, [
        {"name": "canary", "count": 2, "gate": {"min_completed": 2, "max_failure_percent": 0}},
        {"name": "rest"}])

    report(client, job_id, devices[0], "FAILED")
    assert rollout(client, admin_headers, job_id)["state"] == "RUNNING"  # min_completed: 2
    report(client, job_id, devices[1], "FAILED")

    shown = rollout(client, admin_headers, job_id)
    assert shown["state"] == "PAUSED"
    assert shown["reason"] == "gate failed: 2 of 2 devices of stage canary failed (> 0%)"
    assert [s["state"] for s in shown["stages"]] == ["FAILED", "PENDING"]
    assert shown["stages"][0]["failed"] == 2
    stage_gates.decide_stage_gates(datetime.now(UTC), QUIET_SETTINGS)
    release_released_stages(settings, job_id)
    assert handed_out(devices) == set()
    failed = [d for a, d in events(job_id) if a == "job.stage_failed"]
    assert failed == [{"stage": 0, "name": "canary", "size": 2, "succeeded": 0, "failed": 2,
                       "in_progress": 0, "queued": 0, "acknowledged_failures": 0,
                       "reason": shown["reason"]}]


def test_a_gate_fails_mid_stage_without_waiting_for_the_rest(client, admin_headers, settings):
    devices = fleet(12)
    job_id = execute(client, admin_headers, settings, [
        {"name": "half", "count": 10, "gate": {"min_completed": 2, "max_failure_percent": 10}},
        {"name": "rest"}])
    report(client, job_id, devices[0], "FAILED")
    report(client, job_id, devices[1], "SUCCEEDED")
    assert rollout(client, admin_headers, job_id)["state"] == "RUNNING"  # 1 of 10 is 10%
    report(client, job_id, devices[2], "REJECTED")
    shown = rollout(client, admin_headers, job_id)
    assert shown["state"] == "PAUSED"
    assert shown["reason"] == "gate failed: 2 of 10 devices of stage half failed (> 10%)"
    assert shown["stages"][0]["queued"] == 7


def test_a_passed_gate_releases_the_next_stage_and_the_last_one_finishes(
        client, admin_headers, settings):
    devices = fleet(6)
    job_id = execute(client, admin_headers, settings, [
        {"name": "canary", "count": 2}, {"name": "rest"}])
    for device in devices[:2]:
        report(client, job_id, device, "SUCCEEDED")
    shown = rollout(client, admin_headers, job_id)
    assert [s["state"] for s in shown["stages"]] == ["PASSED", "RELEASED"]
    assert shown["current_stage"] == 1
    assert shown["reason"] == ("stage rest released (stage canary passed: 2 of 2 devices "
                               "succeeded (>= 100%))")
    release_released_stages(settings, job_id)
    release_released_stages(settings, job_id)  # a second release releases nothing more
    assert handed_out(devices) == {d.uuid for d in devices[2:]}
    with db.pool().connection() as conn:
        released = conn.execute("SELECT count(*) FROM device_job_status WHERE job_id = %s"
                                " AND released_at IS NOT NULL", (job_id,)).fetchone()["count"]
    assert released == 6
    for device in devices[2:]:
        report(client, job_id, device, "SUCCEEDED")
    detail = client.get(f"/api/v1/jobs/executions/{job_id}", headers=admin_headers).get_json()
    assert detail["job"]["status"] == "SUCCEEDED"
    assert detail["rollout"]["state"] == "FINISHED"
    assert [a for a, _ in events(job_id, "job.stage")] == [
        "job.stage_passed", "job.stage_released", "job.stage_passed"]


def test_a_soak_keeps_the_stage_released_until_it_ends(client, admin_headers, settings):
    devices = fleet(4)
    job_id = execute(client, admin_headers, settings, [
        {"name": "canary", "count": 1, "gate": {"soak_seconds": 600}}, {"name": "rest"}])
    report(client, job_id, devices[0], "SUCCEEDED")
    shown = rollout(client, admin_headers, job_id)
    canary = shown["stages"][0]
    assert canary["state"] == "RELEASED" and canary["soak_until"] is not None
    soak_until = datetime.fromisoformat(canary["soak_until"])
    stage_gates.decide_stage_gates(soak_until - timedelta(seconds=1), QUIET_SETTINGS)
    assert rollout(client, admin_headers, job_id)["stages"][0]["state"] == "RELEASED"
    stage_gates.decide_stage_gates(soak_until, QUIET_SETTINGS)
    assert [s["state"] for s in rollout(client, admin_headers, job_id)["stages"]] == [
        "PASSED", "RELEASED"]


def test_promote_passes_a_soaking_stage_now(client, admin_headers, settings):
    devices = fleet(4)
    job_id = execute(client, admin_headers, settings, [
        {"name": "canary", "count": 1, "gate": {"soak_seconds": 3600}}, {"name": "rest"}])
    report(client, job_id, devices[0], "SUCCEEDED")
    shown = act(client, admin_headers, job_id, "promote")
    assert [s["state"] for s in shown["stages"]] == ["PROMOTED", "RELEASED"]
    assert shown["state"] == "RUNNING"
    release_released_stages(settings, job_id)
    assert handed_out(devices) == {d.uuid for d in devices[1:]}
    promoted = [d for a, d in events(job_id) if a == "job.stage_promoted"]
    assert promoted[0]["succeeded"] == 1 and promoted[0]["size"] == 1


def test_on_success_pause_waits_for_a_person(client, admin_headers, settings):
    devices = fleet(3)
    job_id = execute(client, admin_headers, settings, [
        {"name": "canary", "count": 1, "gate": {"on_success": "pause"}}, {"name": "rest"}])
    report(client, job_id, devices[0], "SUCCEEDED")
    shown = rollout(client, admin_headers, job_id)
    assert shown["state"] == "PAUSED" and "on_success: pause" in shown["reason"]
    assert [s["state"] for s in shown["stages"]] == ["PASSED", "PENDING"]
    shown = act(client, admin_headers, job_id, "resume")
    assert [s["state"] for s in shown["stages"]] == ["PASSED", "RELEASED"]


def test_resume_after_a_failed_gate_acknowledges_its_failures(client, admin_headers, settings):
    devices = fleet(8)
    job_id = execute(client, admin_headers, settings, [
        {"name": "canary", "count": 2},
        {"name": "next", "count": 2, "gate": {"max_failure_percent": 50}}, {"name": "rest"}])
    report(client, job_id, devices[0], "FAILED")
    assert rollout(client, admin_headers, job_id)["state"] == "PAUSED"

    shown = act(client, admin_headers, job_id, "resume")
    assert shown["state"] == "RUNNING"
    assert [s["state"] for s in shown["stages"]] == ["FAILED", "RELEASED", "PENDING"]
    assert shown["stages"][0]["acknowledged_failures"] == 1
    release_released_stages(settings, job_id)
    # The canary still running finishes; its stage's failure trips nothing again.
    report(client, job_id, devices[1], "SUCCEEDED")
    report(client, job_id, devices[2], "FAILED")  # 1 of 2 is 50%: not above
    report(client, job_id, devices[3], "SUCCEEDED")
    shown = rollout(client, admin_headers, job_id)
    assert shown["state"] == "PAUSED"  # 1 of 2 succeeded < 100%: the gate failed at the end
    assert shown["reason"] == ("gate failed: only 1 of 2 devices of stage next succeeded "
                               "(< 100%)")
    resumed = [d for a, d in events(job_id) if a == "job.rollout_resumed"]
    assert resumed[0]["acknowledged_failures"] == 1 and resumed[0]["failed"] == 1


def test_pause_stops_handing_out_and_resume_goes_on(client, admin_headers, settings):
    devices = fleet(5)
    job_id = execute(client, admin_headers, settings, [
        {"name": "canary", "count": 2}, {"name": "rest"}])
    report(client, job_id, devices[0], "IN_PROGRESS")
    shown = act(client, admin_headers, job_id, "pause")
    assert shown["state"] == "PAUSED"
    assert shown["reason"] == "paused by admin:bootstrap (ADMIN_TOKEN)"
    # The device already running keeps its job; the one that had not started gets nothing.
    assert handed_out(devices) == {devices[0].uuid}
    body = act(client, admin_headers, job_id, "pause", 409)
    assert body["rollout_state"] == "PAUSED"
    assert act(client, admin_headers, job_id, "approve", 409)["rollout_state"] == "PAUSED"
    assert act(client, admin_headers, job_id, "resume")["state"] == "RUNNING"
    assert handed_out(devices) == {devices[0].uuid, devices[1].uuid}


def test_approval(client, admin_headers, viewer_headers, settings):
    devices = fleet(3)
    job_id = execute(client, admin_headers, settings, [{"name": "canary", "count": 1},
                                                      {"name": "rest"}],
                     requires_approval=True)
    shown = rollout(client, admin_headers, job_id)
    assert shown["state"] == "WAITING_FOR_APPROVAL"
    assert handed_out(devices) == set()
    act(client, viewer_headers, job_id, "approve", 403)
    shown = act(client, admin_headers, job_id, "approve")
    assert shown["state"] == "RUNNING" and shown["approved_by"] == "admin:bootstrap (ADMIN_TOKEN)"
    release_released_stages(settings, job_id)
    assert handed_out(devices) == {devices[0].uuid}
    assert act(client, admin_headers, job_id, "approve", 409)["rollout_state"] == "RUNNING"


def test_approval_by_another_admin(settings, admin_headers):
    strict = create_app(replace(settings, approval_by_other_admin=True))
    client = strict.test_client()
    devices = fleet(2)
    job_id = execute(client, admin_headers, settings, None, requires_approval=True)
    refused = act(client, admin_headers, job_id, "approve", 403)
    assert "another admin" in refused["message"]
    token, _ = create_api_token("admin", "second admin")
    shown = act(client, {"Authorization": f"Bearer {token}"}, job_id, "approve")
    assert shown["approved_by"] == "admin:second admin"
    assert [s["name"] for s in shown["stages"]] == ["all"]
    release_released_stages(settings, job_id)
    assert handed_out(devices) == {d.uuid for d in devices}


def test_a_stage_timeout_turns_silent_devices_timed_out_and_fails_the_gate(
        client, admin_headers, settings):
    devices = fleet(4)
    job_id = execute(client, admin_headers, settings, [
        {"name": "canary", "count": 2, "gate": {"stage_timeout_minutes": 5}}, {"name": "rest"}])
    report(client, job_id, devices[0], "SUCCEEDED")
    stage_gates.decide_stage_gates(datetime.now(UTC) + timedelta(minutes=4), QUIET_SETTINGS)
    assert rollout(client, admin_headers, job_id)["state"] == "RUNNING"
    stage_gates.decide_stage_gates(datetime.now(UTC) + timedelta(minutes=6), QUIET_SETTINGS)
    shown = rollout(client, admin_headers, job_id)
    assert shown["state"] == "PAUSED"
    assert shown["reason"] == "gate failed: 1 of 2 devices of stage canary failed (> 0%)"
    detail = client.get(f"/api/v1/jobs/executions/{job_id}/devices?status=TIMED_OUT",
                        headers=admin_headers).get_json()
    assert [d["device_uuid"] for d in detail["device_statuses"]] == [str(devices[1].uuid)]


def test_actions_that_do_not_apply(client, admin_headers, viewer_headers, settings):
    fleet(2)
    plain = execute(client, admin_headers, settings, None)
    assert act(client, admin_headers, plain, "pause", 409)["rollout_state"] is None
    job_id = execute(client, admin_headers, settings, [{"name": "one", "count": 1},
                                                      {"name": "rest"}])
    act(client, viewer_headers, job_id, "pause", 403)
    client.post(f"/api/v1/jobs/executions/{job_id}/cancel", json={}, headers=admin_headers)
    for action in ("pause", "resume", "promote", "approve"):
        assert act(client, admin_headers, job_id, action, 409)["rollout_state"] == "STOPPED"
    assert act(client, admin_headers, uuid.uuid4(), "pause", 404)


def test_cancel_cancels_the_devices_of_unreleased_stages(client, admin_headers, settings):
    fleet(5)
    job_id = execute(client, admin_headers, settings, [{"name": "canary", "count": 1},
                                                      {"name": "rest"}])
    answer = client.post(f"/api/v1/jobs/executions/{job_id}/cancel", json={},
                         headers=admin_headers)
    assert answer.get_json()["canceled_devices"] == 5
    shown = rollout(client, admin_headers, job_id)
    assert shown["state"] == "STOPPED"
    assert [s["queued"] for s in shown["stages"]] == [0, 0]


@pytest.mark.parametrize("stages_, field", [
    ([{"name": "a"}, {"name": "b", "count": 1}], "only the last stage may take the rest"),
    ([{"name": "a", "count": 1, "percent": 5}], "not both"),
    ([{"name": "a", "count": 1}, {"name": "a"}], "unique"),
    ([{"name": "a", "count": 0}], "greater than or equal to 1"),
    ([{"name": "a", "percent": 120}], "less than or equal to 100"),
    ([{"name": "a", "count": 1, "gate": {"on_success": "later"}}], "Must be one of"),
    ([{"name": "rest", "target_filter": {"x": 1}}], "cannot have a target_filter"),
    ([], "Length must be between 1 and 20"),
])
def test_bad_stages_answer_400(client, admin_headers, stages_, field):
    fleet(1)
    answer = client.post("/api/v1/jobs/execute", headers=admin_headers, json={
        "job_name": "x", "job_document": DOCUMENT, "target_type": "all", "stages": stages_})
    assert answer.status_code == 400
    assert field in str(answer.get_json()["errors"]["stages"])


def test_a_stage_filter_is_checked_as_a_target_filter(client, admin_headers):
    fleet(1)
    answer = client.post("/api/v1/jobs/execute", headers=admin_headers, json={
        "job_name": "x", "job_document": DOCUMENT, "target_type": "all",
        "stages": [{"name": "a", "count": 1, "target_filter": {"device_type": 7}},
                   {"name": "rest"}]})
    assert answer.status_code == 400
    assert "stage 'a'" in answer.get_json()["message"]


def test_a_template_carries_default_stages(client, admin_headers, settings):
    devices = fleet(3)
    template = client.post("/api/v1/jobs/templates", headers=admin_headers, json={
        "name": "staged", "category": "custom", "job_document": DOCUMENT,
        "stages": [{"name": "canary", "count": 1}, {"name": "rest"}]})
    assert template.status_code == 201, template.get_json()
    assert template.get_json()["stages"][0]["name"] == "canary"
    answer = client.post("/api/v1/jobs/execute", headers=admin_headers, json={
        "template_id": template.get_json()["id"], "target_type": "all"})
    job_id = uuid.UUID(answer.get_json()["job"]["job_id"])
    fan_out(job_id, settings)
    assert handed_out(devices) == {devices[0].uuid}


def test_a_retry_keeps_the_device_in_its_stage(client, admin_headers, settings):
    devices = fleet(4)
    job_id = execute(client, admin_headers, settings, [
        {"name": "canary", "count": 2, "gate": {"min_completed": 2}}, {"name": "rest"}])
    report(client, job_id, devices[0], "FAILED")
    answer = client.post(f"/api/v1/devices/{devices[0].uuid}/jobs/{job_id}/retry",
                         headers=admin_headers)
    assert answer.status_code == 200
    assert stage_of(job_id)[devices[0].uuid] == 0
    shown = rollout(client, admin_headers, job_id)
    assert (shown["stages"][0]["size"], shown["stages"][0]["queued"]) == (2, 2)


def test_a_continuous_job_puts_a_late_device_in_its_last_stage(client, admin_headers, settings):
    fleet(3)
    job_id = execute(client, admin_headers, settings, [{"name": "canary", "count": 1},
                                                      {"name": "rest"}],
                     execution_type="continuous")
    late, _ = deliver(register_device("late", "raspberry-pi", {}), QUIET_SETTINGS)
    continuous.reconcile_continuous(datetime.now(UTC))
    assert stage_of(job_id)[late["uuid"]] == 1
    assert next_job(late["uuid"]) is None  # its stage is not released yet
    assert rollout(client, admin_headers, job_id)["stages"][1]["size"] == 3


def test_a_killed_release_is_carried_on_by_the_sweep_and_releases_each_row_once(
        client, admin_headers, settings):
    devices = fleet(7)
    job_id = execute(client, admin_headers, settings, [{"name": "canary", "count": 1},
                                                      {"name": "rest"}])
    report(client, job_id, devices[0], "SUCCEEDED")
    # The worker releasing stage 1 committed one chunk of two rows, then died.
    with db.transaction() as c:
        first = c.row("release_stage_chunk", job_id=job_id, stage=1, chunk_size=2)["released"]
    with db.pool().connection() as conn:
        conn.execute("UPDATE job_stages SET release_progress_at = now() - interval '1 hour'"
                     " WHERE job_id = %s AND stage = 1", (job_id,))
        before = _released_at(conn.execute("SELECT device_uuid, released_at FROM device_job_status"
                                   " WHERE job_id = %s AND device_uuid = ANY(%s)",
                                   (job_id, first)).fetchall())
    swept = stage_gates.decide_stage_gates(datetime.now(UTC), QUIET_SETTINGS)
    assert swept.stage_releases == {(job_id, 1)}
    assert release(job_id, 1, settings) == 4
    assert release(job_id, 1, settings) == 0
    assert handed_out(devices) == {d.uuid for d in devices[1:]}
    with db.pool().connection() as conn:
        after = _released_at(conn.execute("SELECT device_uuid, released_at FROM device_job_status"
                                  " WHERE job_id = %s AND device_uuid = ANY(%s)",
                                  (job_id, first)).fetchall())
    assert after == before


def _released_at(rows: list[dict]) -> dict:
    return {row["device_uuid"]: row["released_at"] for row in rows}


def test_the_gate_sweep_is_periodic_work_under_its_own_name():
    assert stage_gates.SWEEP in SWEEPS
    assert stage_gates.SWEEP.task_name == "maintenance.decide_stage_gates"
    assert stage_gates.SWEEP.interval_setting == "stage_gate_sweep_interval_s"
    assert gates.NO_GATE["min_success_percent"] == 100


def test_every_run_of_a_recurring_job_is_staged(client, admin_headers, settings):
    devices = fleet(3)
    answer = client.post("/api/v1/jobs/execute", headers=admin_headers, json={
        "job_name": "nightly", "job_document": DOCUMENT, "target_type": "all",
        "execution_type": "recurring", "schedule": {"cron": "* * * * * */5", "timezone": "UTC"},
        "stages": [{"name": "canary", "count": 1}, {"name": "rest"}]})
    parent = uuid.UUID(answer.get_json()["job"]["job_id"])
    assert rollout(client, admin_headers, parent)["state"] is None  # the parent never rolls out
    with db.pool().connection() as conn:
        first = conn.execute("SELECT next_run_at FROM job_executions WHERE job_id = %s",
                             (parent,)).fetchone()["next_run_at"]
    runs = [*recurring.fire_due_runs(first).fan_outs,
            *recurring.fire_due_runs(first + timedelta(seconds=5)).fan_outs]
    assert len(runs) == 2
    for run in runs:
        fan_out(run, settings)
        assert stage_of(run) == {devices[0].uuid: 0, devices[1].uuid: 1, devices[2].uuid: 1}
        assert rollout(client, admin_headers, run)["state"] == "RUNNING"


def test_a_rollout_rate_applies_within_a_released_stage(client, admin_headers, settings):
    devices = fleet(6)
    execute(client, admin_headers, settings, [{"name": "canary", "count": 2}, {"name": "rest"}],
            rollout_config={"maximum_per_minute": 1})
    assert handed_out(devices) == set()
    rollout_rate.release_waves(datetime.now(UTC))
    assert handed_out(devices) <= {devices[0].uuid, devices[1].uuid}
    assert len(handed_out(devices)) == 1
    later = datetime.now(UTC) + timedelta(minutes=2)
    for minute in range(4):
        rollout_rate.release_waves(later + timedelta(minutes=minute))
    # Never beyond the released stage, however many waves.
    assert handed_out(devices) == {devices[0].uuid, devices[1].uuid}


def test_an_approval_before_the_fan_out_releases_the_first_stage_when_it_plans(
        client, admin_headers, settings):
    devices = fleet(3)
    answer = client.post("/api/v1/jobs/execute", headers=admin_headers, json={
        "job_name": "early", "job_document": DOCUMENT, "target_type": "all",
        "requires_approval": True, "stages": [{"name": "canary", "count": 1}, {"name": "rest"}]})
    job_id = uuid.UUID(answer.get_json()["job"]["job_id"])
    assert answer.get_json()["job"]["rollout_state"] == "WAITING_FOR_APPROVAL"
    shown = act(client, admin_headers, job_id, "approve")
    assert shown["state"] == "RUNNING" and shown["stages"][0]["state"] == "PENDING"
    fan_out(job_id, settings)
    assert handed_out(devices) == {devices[0].uuid}
    assert [a for a, _ in events(job_id, "job.rollout")] == ["job.rollout_approved"]
