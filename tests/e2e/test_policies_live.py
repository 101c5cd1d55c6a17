"""Execution policies run by real processes: a Celery worker and two beats, sweeping every second.

Jobs are created in-process (``create_execution``, as the API does) on the test's database and
broker prefix; the worker fans them out and the beats drive every policy sweep.
"""

from __future__ import annotations

import time
from dataclasses import replace

import psycopg
import pytest
from job_rows import job_row as job_state
from job_rows import next_job, quietly
from processes import wait_until

from dispatcher import db
from dispatcher.fleet.devices import register_device
from dispatcher.jobs import reports
from dispatcher.jobs.create import create_execution
from dispatcher.policies import recurring
from dispatcher.sender import deliver
from schemas.policies import ExecutionPolicies

pytestmark = pytest.mark.slow

DOCUMENT = {"version": "1.0", "steps": [
    {"name": "uptime", "type": "runCommand", "input": {"command": "uptime"}}]}
ACTOR = "admin:test"
# How long a sweep's effect may take to show. Sweeps run every second, but on a loaded machine
# a sweep sent by beat can wait in the queue past its expiry and be dropped for the next one;
# a wait returns as soon as its condition holds, so a generous limit costs nothing when green.
SWEEP_WAIT_S = 45


@pytest.fixture
def quick(settings):
    """Settings whose beats sweep every second."""
    return replace(settings, policy_sweep_interval_s=1, continuous_reconcile_interval_s=2)


@pytest.fixture
def sweeping(app, quick, server_processes):
    """A worker and TWO beats: every periodic task is sent twice."""
    server_processes.start_worker(quick, concurrency=2)
    server_processes.start_beat(quick)
    server_processes.start_beat(quick)
    return quick


def fleet(n: int, **attributes) -> list:
    return [quietly(register_device(f"pi-{i}", "raspberry-pi", attributes))[0]["uuid"]
            for i in range(n)]


def execute(settings, policies: dict, target_filter: dict | None = None) -> dict:
    body = {"job_name": "live policy job", "job_document": DOCUMENT,
            "target_type": "group" if target_filter else "all",
            **({"target_filter": target_filter} if target_filter else {}),
            **ExecutionPolicies().load(policies)}
    return deliver(create_execution(body, ACTOR, settings), settings)


def job(job_id) -> dict:
    return job_state(job_id)


def latest_rows(job_id) -> list[dict]:
    return db.all("list_execution_device_statuses", job_id=job_id, status=None, limit=500,
                  offset=0)


def actions(job_id) -> list[str]:
    return [e["action"] for e in db.all("list_job_events", job_id=job_id, limit=1000, offset=0)]


def report(device, job_id, status: str) -> None:
    quietly(reports.report_status(device, job_id, {"status": status}, 65536, ACTOR))


def test_recurring_job_fires_each_slot_once_with_two_beats(sweeping):
    fleet(2)
    parent = execute(sweeping, {"execution_type": "recurring",
                                "schedule": {"cron": "* * * * * */2", "max_runs": 3}})
    wait_until(lambda: job(parent["job_id"])["status"] == "SUCCEEDED", SWEEP_WAIT_S, "three runs")
    runs = recurring.list_runs(parent["job_id"], 50, 0)["runs"]
    slots = [r["scheduled_for"] for r in runs]
    assert len(slots) == len(set(slots)) == 3
    assert all(slot.second % 2 == 0 for slot in slots)
    assert actions(parent["job_id"]).count("job.run_fired") == 3
    # Each run is fanned out by the worker to both devices.
    for run in runs:
        wait_until(lambda run=run: len(latest_rows(run["job_id"])) == 2, SWEEP_WAIT_S,
                   "run fan-out")


def test_continuous_job_reaches_a_device_registered_after_it_started(sweeping):
    fleet(1, site="lab")
    started = execute(sweeping, {"execution_type": "continuous"}, {"site": "lab"})
    wait_until(lambda: len(latest_rows(started["job_id"])) == 1, SWEEP_WAIT_S, "fan-out")
    (newcomer,) = fleet(1, site="lab")
    found = wait_until(lambda: next_job(newcomer), SWEEP_WAIT_S, "the newcomer's job")
    assert found["job_id"] == started["job_id"]
    assert job(started["job_id"])["total_devices"] == 2


def test_rollout_holds_back_all_but_the_rate(sweeping):
    devices = fleet(10)
    rolling = execute(sweeping, {"rollout_config": {"maximum_per_minute": 3}})
    wait_until(lambda: job(rolling["job_id"])["released_devices"] == 3, SWEEP_WAIT_S, "first wave")
    time.sleep(3)  # six more sweeps from two beats: the minute is used up
    assert job(rolling["job_id"])["released_devices"] == 3
    assert sum(next_job(d) is not None for d in devices) == 3
    assert actions(rolling["job_id"]).count("job.rollout_wave") == 1


def test_abort_threshold_cancels_the_rest(sweeping):
    devices = fleet(6)
    failing = execute(sweeping, {"abort_config": {"criteria_list": [{
        "failure_type": "FAILED", "action": "CANCEL", "threshold_percentage": 50,
        "min_number_of_executed_devices": 2}]}})
    wait_until(lambda: len(latest_rows(failing["job_id"])) == 6, SWEEP_WAIT_S, "fan-out")
    report(devices[0], failing["job_id"], "FAILED")
    report(devices[1], failing["job_id"], "FAILED")
    wait_until(lambda: job(failing["job_id"])["status"] == "CANCELED", SWEEP_WAIT_S, "abort")
    statuses = sorted(r["status"] for r in latest_rows(failing["job_id"]))
    assert statuses == ["CANCELED"] * 4 + ["FAILED"] * 2
    assert "job.aborted" in actions(failing["job_id"])


def test_silent_device_times_out_and_is_queued_again(sweeping, database_url):
    (device,) = fleet(1)
    silent = execute(sweeping, {
        "timeout_config": {"in_progress_timeout_minutes": 1},
        "retry_config": {"criteria_list": [{"failure_type": "TIMED_OUT", "number_of_retries": 1}]},
    })
    wait_until(lambda: latest_rows(silent["job_id"]), SWEEP_WAIT_S, "fan-out")
    report(device, silent["job_id"], "IN_PROGRESS")
    # The minute passes at once: the deadline is moved into the past instead of waited for.
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("UPDATE device_job_status SET timeout_at = now() - interval '1 second'"
                     " WHERE job_id = %s", (silent["job_id"],))
    wait_until(lambda: latest_rows(silent["job_id"])[0]["execution_number"] == 2, SWEEP_WAIT_S,
               "retry")
    row = latest_rows(silent["job_id"])[0]
    assert row["status"] == "QUEUED"
    assert next_job(device)["execution_number"] == 2
    trail = actions(silent["job_id"])
    assert trail.count("device_job.timed_out") == 1 and trail.count("device_job.retried") == 1
    assert job(silent["job_id"])["status"] == "IN_PROGRESS"
