"""Fan-out in process: one row per targeted device, chunk by chunk, however often it runs."""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import UTC, datetime

import pytest
from job_rows import bulk_register_devices, fan_out, quietly, target_events

from dispatcher import db
from dispatcher.config import Settings
from dispatcher.fleet.devices import register_device
from dispatcher.jobs.create import create_execution
from dispatcher.maintenance.stalled_fanouts import resume_stalled_fanouts
from dispatcher.outcome import Outcome
from dispatcher.sender import deliver

DIAGNOSTIC = {
    "version": "1.0",
    "steps": [{"name": "Check disk space", "type": "runCommand", "input": {"command": "df,-h"}}],
}
ACTOR = "admin:test"


@pytest.fixture
def small_chunks(settings):
    """Chunks of 10 devices, so a couple of dozen devices take several chunks."""
    return replace(settings, fanout_chunk_size=10)


def execute(settings, target_type: str = "all", **target) -> dict:
    body = {"job_name": "Custom diagnostic", "job_document": DIAGNOSTIC,
            "target_type": target_type, **target}
    return deliver(create_execution(body, ACTOR, settings), settings)


def job_rows(job_id) -> list[dict]:
    with db.pool().connection() as conn:
        return conn.execute(
            "SELECT device_uuid, status, execution_number, is_latest FROM device_job_status"
            " WHERE job_id = %s ORDER BY device_uuid", (job_id,)).fetchall()


def execution_row(job_id) -> dict:
    with db.pool().connection() as conn:
        return conn.execute("SELECT * FROM job_executions WHERE job_id = %s",
                            (job_id,)).fetchone()


def all_device_uuids() -> list[uuid.UUID]:
    with db.pool().connection() as conn:
        return [r["uuid"] for r in conn.execute("SELECT uuid FROM devices ORDER BY uuid")]


def test_every_device_gets_exactly_one_queued_row(app, small_chunks):
    bulk_register_devices(25, "raspberry-pi")
    job = execute(small_chunks)
    assert fan_out(job["job_id"], small_chunks) == 25
    rows = job_rows(job["job_id"])
    assert [r["device_uuid"] for r in rows] == all_device_uuids()
    assert {(r["status"], r["execution_number"], r["is_latest"]) for r in rows} == {
        ("QUEUED", 1, True)}
    execution = execution_row(job["job_id"])
    assert execution["fanout_status"] == "DONE"
    assert execution["total_devices"] == 25
    assert execution["fanout_done_at"] is not None
    events = target_events("job", job["job_id"])
    assert [e["action"] for e in events] == ["job.created", "job.fanned_out"]


def test_running_the_fan_out_twice_adds_nothing(app, small_chunks):
    bulk_register_devices(25)
    job = execute(small_chunks)
    fan_out(job["job_id"], small_chunks)
    assert fan_out(job["job_id"], small_chunks) == 0
    assert len(job_rows(job["job_id"])) == 25


def test_a_fan_out_resumed_from_its_cursor_fills_in_the_rest(app, small_chunks):
    """As after a worker died: some rows committed, the cursor past them, fan-out not DONE."""
    bulk_register_devices(25)
    job = execute(small_chunks)
    fleet = all_device_uuids()
    with db.pool().connection() as conn:
        conn.execute("INSERT INTO device_job_status (job_id, device_uuid)"
                     " SELECT %s, unnest(%s::uuid[])", (job["job_id"], fleet[:10]))
        conn.execute("UPDATE job_executions SET fanout_cursor = %s, fanout_status = 'RUNNING'"
                     " WHERE job_id = %s", (fleet[9], job["job_id"]))
    assert fan_out(job["job_id"], small_chunks) == 15
    assert [r["device_uuid"] for r in job_rows(job["job_id"])] == fleet
    assert execution_row(job["job_id"])["total_devices"] == 25


@pytest.mark.parametrize(("target_filter", "expected"), [
    ({"device_type": "raspberry-pi"}, 14),
    ({"environment": "production"}, 15),
    ({"device_type": "raspberry-pi", "environment": "production"}, 12),
])
def test_a_group_gets_rows_for_its_members_only(app, small_chunks, target_filter, expected):
    bulk_register_devices(12, "raspberry-pi", {"environment": "production"}, "pi-prod")
    bulk_register_devices(2, "raspberry-pi", {"environment": "staging"}, "pi-staging")
    bulk_register_devices(3, "gateway", {"environment": "production"}, "gw-prod")
    job = execute(small_chunks, "group", target_filter=target_filter)
    assert job["total_devices"] == expected
    fan_out(job["job_id"], small_chunks)
    with db.pool().connection() as conn:
        members = conn.execute(
            "SELECT d.device_type, d.attributes FROM device_job_status s"
            " JOIN devices d ON d.uuid = s.device_uuid WHERE s.job_id = %s",
            (job["job_id"],)).fetchall()
    assert len(members) == expected
    for member in members:
        assert member["device_type"] == target_filter.get("device_type", member["device_type"])
        assert member["attributes"].get("environment") == target_filter.get(
            "environment", member["attributes"].get("environment"))


def test_a_device_list_gets_rows_for_those_devices_only(app, small_chunks):
    bulk_register_devices(30)
    chosen = all_device_uuids()[3:15]
    job = execute(small_chunks, "device", target_devices=chosen)
    fan_out(job["job_id"], small_chunks)
    assert [r["device_uuid"] for r in job_rows(job["job_id"])] == chosen


def test_total_devices_follows_the_fleet_between_execute_and_fan_out(app, small_chunks):
    bulk_register_devices(12)
    job = execute(small_chunks)
    assert job["total_devices"] == 12
    quietly(register_device("late-comer"))
    fan_out(job["job_id"], small_chunks)
    assert execution_row(job["job_id"])["total_devices"] == 13


def test_a_canceled_job_gets_no_more_rows(app, small_chunks):
    bulk_register_devices(12)
    job = execute(small_chunks)
    with db.pool().connection() as conn:
        conn.execute("UPDATE job_executions SET status = 'CANCELED' WHERE job_id = %s",
                     (job["job_id"],))
    assert fan_out(job["job_id"], small_chunks) == 0
    execution = execution_row(job["job_id"])
    assert execution["fanout_status"] == "DONE"
    assert execution["total_devices"] == 0


def test_a_scheduled_job_waits_for_its_start(app, small_chunks):
    bulk_register_devices(5)
    job = execute(small_chunks)
    with db.pool().connection() as conn:
        conn.execute("UPDATE job_executions SET status = 'SCHEDULED', fanout_enqueued_at = NULL"
                     " WHERE job_id = %s", (job["job_id"],))
    assert fan_out(job["job_id"], small_chunks) == 0
    assert execution_row(job["job_id"])["fanout_status"] == "PENDING"
    assert stalled_now(0).fan_outs == []


def test_a_job_finished_by_its_devices_before_the_fan_out_ended_is_completed(app, small_chunks):
    """Every device reported before the fan-out was marked DONE: the fan-out completes it."""
    bulk_register_devices(3)
    job = execute(small_chunks)
    with db.pool().connection() as conn:
        conn.execute("INSERT INTO device_job_status (job_id, device_uuid, status)"
                     " SELECT %s, uuid, 'SUCCEEDED' FROM devices", (job["job_id"],))
    assert fan_out(job["job_id"], small_chunks) == 0
    execution = execution_row(job["job_id"])
    assert execution["status"] == "SUCCEEDED"
    assert execution["succeeded_devices"] == 3


def test_the_sweeper_leaves_finished_and_fresh_fan_outs_alone(app, settings):
    bulk_register_devices(3)
    done = execute(settings)
    fan_out(done["job_id"], settings)
    fresh = execute(settings)
    assert stalled_now(60).fan_outs == []
    assert stalled_now(0).fan_outs == [
        fresh["job_id"]]


def test_an_unknown_job_is_nothing_to_fan_out(app, settings):
    assert fan_out(uuid.uuid4(), settings) == 0


def stalled_now(after_s: int) -> Outcome:
    """What the stalled fan-out sweep finds now, with fan-outs stalled after ``after_s``."""
    return resume_stalled_fanouts(datetime.now(UTC), Settings(fanout_stalled_after_s=after_s))
