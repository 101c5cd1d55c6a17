"""Fan-out through real processes: the API, a Celery worker and beat, killed and restarted."""

from __future__ import annotations

import json
import urllib.request
from dataclasses import replace
from datetime import UTC, datetime

import psycopg
import pytest
from job_rows import bulk_register_devices
from processes import wait_until

from dispatcher import db
from dispatcher.config import Settings
from dispatcher.jobs.create import create_execution
from dispatcher.maintenance.stalled_fanouts import resume_stalled_fanouts
from dispatcher.sender import carry_out, deliver

pytestmark = pytest.mark.slow

DIAGNOSTIC = {
    "version": "1.0",
    "steps": [{"name": "Check disk space", "type": "runCommand", "input": {"command": "df,-h"}}],
}
CUSTOM_JOB = {"job_name": "Custom diagnostic", "job_document": DIAGNOSTIC, "target_type": "all"}
CLOSED_PORT_BROKER = "redis://127.0.0.1:1/0"
FANOUT_TIMEOUT_S = 60.0


def fanout_state(job_id) -> dict:
    with db.pool().connection() as conn:
        return conn.execute(
            "SELECT e.fanout_status, e.fanout_cursor, e.total_devices,"
            " (SELECT count(*) FROM device_job_status s WHERE s.job_id = e.job_id) AS rows,"
            " (SELECT count(DISTINCT device_uuid) FROM device_job_status s"
            "   WHERE s.job_id = e.job_id) AS devices"
            " FROM job_executions e WHERE e.job_id = %s", (job_id,)).fetchone()


def fanned_out(job_id) -> dict | None:
    state = fanout_state(job_id)
    return state if state["fanout_status"] == "DONE" else None


def test_a_job_executed_on_the_live_api_is_fanned_out_by_the_worker(
    app, settings, celery_worker, api_server, admin_headers
):
    bulk_register_devices(12, "raspberry-pi", {"environment": "production"}, "pi-prod")
    bulk_register_devices(3, "raspberry-pi", {"environment": "staging"}, "pi-staging")
    body = {**CUSTOM_JOB, "target_type": "group",
            "target_filter": {"device_type": "raspberry-pi", "environment": "production"}}
    request = urllib.request.Request(
        f"{api_server.url}/api/v1/jobs/execute", data=json.dumps(body).encode(), method="POST",
        headers={**admin_headers, "Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 201
        answer = json.load(response)
    assert answer["message"] == "Job created and queued for 12 device(s)"
    state = wait_until(lambda: fanned_out(answer["job"]["job_id"]), FANOUT_TIMEOUT_S, "fan-out")
    assert state["rows"] == state["devices"] == state["total_devices"] == 12


def test_a_worker_killed_mid_fan_out_is_finished_by_another(
    app, settings, database_url, server_processes
):
    """30,000 devices in chunks of 1,000. A test transaction holds one device in the 16th chunk,
    so the worker is caught mid-fan-out with 15 chunks committed; it is SIGKILLed there."""
    total, chunk, held_position = 30_000, 1_000, 15_500
    small_chunks = replace(settings, fanout_chunk_size=chunk)
    bulk_register_devices(total)
    with psycopg.connect(database_url) as blocker:
        held = blocker.execute("SELECT uuid FROM devices ORDER BY uuid OFFSET %s LIMIT 1",
                               (held_position,)).fetchone()[0]
        blocker.execute("SELECT 1 FROM devices WHERE uuid = %s FOR UPDATE", (held,))
        first_worker = server_processes.start_worker(small_chunks)
        job = deliver(create_execution(CUSTOM_JOB, "admin:test", small_chunks), small_chunks)
        job_id = job["job_id"]
        wait_until(lambda: fanout_state(job_id)["rows"] == 15 * chunk, FANOUT_TIMEOUT_S,
                   "15 chunks")
        first_worker.kill()
        blocker.rollback()
    cut_short = fanout_state(job_id)
    assert cut_short["fanout_status"] == "RUNNING"
    assert cut_short["rows"] == 15 * chunk

    server_processes.start_worker(small_chunks)
    stalled = resume_stalled_fanouts(datetime.now(UTC), Settings(fanout_stalled_after_s=0))
    assert stalled.fan_outs == [job_id]
    carry_out(stalled, small_chunks)
    state = wait_until(lambda: fanned_out(job_id), FANOUT_TIMEOUT_S, "the resumed fan-out")
    assert state["rows"] == state["devices"] == state["total_devices"] == total


def test_a_job_executed_while_the_broker_was_down_is_fanned_out_by_the_beat_sweeper(
    app, settings, admin_headers, server_processes
):
    from api.app import create_app

    bulk_register_devices(20)
    quick_sweeps = replace(settings, fanout_sweep_interval_s=1, fanout_stalled_after_s=1)
    server_processes.start_worker(quick_sweeps)
    server_processes.start_beat(quick_sweeps)
    broker_down = create_app(replace(settings, celery_broker_url=CLOSED_PORT_BROKER))
    response = broker_down.test_client().post("/api/v1/jobs/execute", json=CUSTOM_JOB,
                                              headers=admin_headers)
    assert response.status_code == 201
    job_id = response.get_json()["job"]["job_id"]
    state = wait_until(lambda: fanned_out(job_id), FANOUT_TIMEOUT_S, "the sweeper's fan-out")
    assert state["rows"] == state["devices"] == 20
