"""Execution policy sweeps driven directly, with the clock passed in instead of waited for.

Jobs are created through ``create_execution`` and fanned out by calling the fan-out itself, so
every test runs the same path as production up to the sweep under test.
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from job_rows import QUIET_SETTINGS, fan_out, next_job, quietly
from job_rows import job_row as job_state

from dispatcher import db
from dispatcher.fleet.devices import register_device, update_device
from dispatcher.jobs import reports
from dispatcher.jobs.create import create_execution
from dispatcher.maintenance import (
    end_times,
    finished_jobs,
    maintenance_windows,
    scheduled_starts,
    sweep,
    timeouts,
)
from dispatcher.outcome import Outcome
from dispatcher.policies import abort, recurring, retries, rollout
from dispatcher.sender import carry_out, deliver
from schemas.policies import ExecutionPolicies

DOCUMENT = {"version": "1.0", "steps": [
    {"name": "uptime", "type": "runCommand", "input": {"command": "uptime"}}]}
ACTOR = "admin:test"
# What the maintenance sweeps read of the settings: nothing these tests change.
SWEEP_SETTINGS = QUIET_SETTINGS
advance_windows = maintenance_windows.advance_maintenance_windows


@pytest.fixture(autouse=True)
def _database(settings) -> None:
    db.configure(settings)


def now() -> datetime:
    return datetime.now(UTC)


def fleet(n: int, device_type: str = "raspberry-pi", **attributes) -> list:
    return [quietly(register_device(f"{device_type}-{i}", device_type, attributes))[0]["uuid"]
            for i in range(n)]


def execute(settings, policies: dict | None = None, *, target_filter=None,
            devices=None) -> dict:
    body = {"job_name": "policy test", "job_document": DOCUMENT,
            **ExecutionPolicies().load(policies or {})}
    if devices is not None:
        body.update(target_type="device", target_devices=devices)
    elif target_filter is not None:
        body.update(target_type="group", target_filter=target_filter)
    else:
        body.update(target_type="all")
    job = deliver(create_execution(body, ACTOR, settings), settings)
    if job["status"] != "SCHEDULED":
        fan_out(job["job_id"], settings)
    return job


def job_row(job_id) -> dict:
    return job_state(job_id)


def rows(job_id) -> dict:
    """The latest row of each device of a job, by device uuid."""
    found = db.all("list_execution_device_statuses", job_id=job_id, status=None, limit=500,
                   offset=0)
    return {r["device_uuid"]: r for r in found}


def events(job_id, action: str) -> list[dict]:
    trail = db.all("list_job_events", job_id=job_id, limit=500, offset=0)
    return [e for e in trail if e["action"] == action]


def report(device, job_id, status: str, **extra) -> dict:
    return quietly(reports.report_status(device, job_id, {"status": status, **extra}, 65536,
                                         ACTOR))


def delivered(device) -> bool:
    return next_job(device) is not None


# --- rollout -------------------------------------------------------------------------------

def test_rollout_releases_no_more_than_the_rate_per_sliding_minute(settings):
    devices = fleet(8)
    job = execute(settings, {"rollout_config": {"maximum_per_minute": 3}})
    assert not any(delivered(d) for d in devices)
    t0 = now()
    assert rollout.release_waves(t0).moved_rows == 3
    assert rollout.release_waves(t0 + timedelta(seconds=30)).moved_rows == 0
    assert rollout.release_waves(t0 + timedelta(seconds=59)).moved_rows == 0
    assert rollout.release_waves(t0 + timedelta(seconds=61)).moved_rows == 3
    assert sum(delivered(d) for d in devices) == 6
    waves = events(job["job_id"], "job.rollout_wave")
    assert [w["details"]["released"] for w in waves] == [3, 3]


def test_two_sweeps_at_once_release_one_wave(settings):
    fleet(20)
    job = execute(settings, {"rollout_config": {"maximum_per_minute": 5}})
    t0 = now()
    results: list[int] = []
    threads = [threading.Thread(target=lambda: results.append(
        rollout.release_waves(t0).moved_rows)) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(results) == 5
    assert job_row(job["job_id"])["released_devices"] == 5


# --- timeouts ------------------------------------------------------------------------------

def test_silent_devices_time_out_in_chunks_and_are_audited(settings, monkeypatch):
    devices = fleet(5)
    job = execute(settings, {"timeout_config": {"in_progress_timeout_minutes": 10}})
    for device in devices:
        report(device, job["job_id"], "IN_PROGRESS")
    assert timeouts.time_out_overdue(now() + timedelta(minutes=9), SWEEP_SETTINGS).moved_rows == 0
    monkeypatch.setattr(timeouts, "BATCH_SIZE", 2)
    outcome = timeouts.time_out_overdue(now() + timedelta(minutes=11), SWEEP_SETTINGS)
    assert outcome.moved_rows == 5
    assert {r["status"] for r in rows(job["job_id"]).values()} == {"TIMED_OUT"}
    assert len(events(job["job_id"], "device_job.timed_out")) == 5
    carry_out(outcome, settings)
    assert job_row(job["job_id"])["status"] == "FAILED"


def test_the_timeout_sweep_rests_between_its_chunks_for_a_share_of_their_time(
        settings, monkeypatch):
    devices = fleet(5)
    job = execute(settings, {"timeout_config": {"in_progress_timeout_minutes": 10}})
    for device in devices:
        report(device, job["job_id"], "IN_PROGRESS")
    monkeypatch.setattr(timeouts, "BATCH_SIZE", 2)
    rests: list[float] = []
    sweeping, sleep = threading.get_ident(), time.sleep

    def sleep_or_count(seconds: float) -> None:  # other threads of the process sleep as ever
        if threading.get_ident() == sweeping:
            rests.append(seconds)
        else:
            sleep(seconds)

    monkeypatch.setattr(sweep.time, "sleep", sleep_or_count)
    outcome = timeouts.time_out_overdue(now() + timedelta(minutes=11), SWEEP_SETTINGS)
    assert outcome.moved_rows == 5
    # Chunks of 2, 2 and 1: a rest after each full chunk, none after the last.
    assert len(rests) == 2 and all(rest > 0 for rest in rests)


def test_step_timeout_shortens_the_deadline_and_minus_one_clears_it(settings):
    first, second = fleet(2)
    job = execute(settings, {"timeout_config": {"in_progress_timeout_minutes": 60}})
    report(first, job["job_id"], "IN_PROGRESS", step_timeout_minutes=5)
    report(second, job["job_id"], "IN_PROGRESS", step_timeout_minutes=5)
    report(second, job["job_id"], "IN_PROGRESS", step_timeout_minutes=-1)
    timeouts.time_out_overdue(now() + timedelta(minutes=6), SWEEP_SETTINGS)
    statuses = {d: r["status"] for d, r in rows(job["job_id"]).items()}
    assert statuses == {first: "TIMED_OUT", second: "IN_PROGRESS"}
    timeouts.time_out_overdue(now() + timedelta(minutes=61), SWEEP_SETTINGS)
    assert rows(job["job_id"])[second]["status"] == "TIMED_OUT"


def test_timeout_sweep_skips_a_row_a_report_holds_instead_of_waiting(settings, database_url):
    held, free = fleet(2)
    job = execute(settings, {"timeout_config": {"in_progress_timeout_minutes": 1}})
    report(held, job["job_id"], "IN_PROGRESS")
    report(free, job["job_id"], "IN_PROGRESS")
    with psycopg.connect(database_url) as other:
        other.execute("SELECT 1 FROM device_job_status WHERE device_uuid = %s FOR UPDATE",
                      (held,))
        started = now()
        moved = timeouts.time_out_overdue(now() + timedelta(minutes=2), SWEEP_SETTINGS).moved_rows
        assert (now() - started).total_seconds() < 2
        assert moved == 1
    assert timeouts.time_out_overdue(now() + timedelta(minutes=2), SWEEP_SETTINGS).moved_rows == 1


# --- auto-retry ----------------------------------------------------------------------------

def test_failed_device_is_retried_up_to_the_limit_and_the_job_waits_for_it(settings):
    (device,) = fleet(1)
    job = execute(settings, {"retry_config": {"criteria_list": [
        {"failure_type": "FAILED", "number_of_retries": 2}]}})
    for attempt in (1, 2, 3):
        report(device, job["job_id"], "FAILED")
        row = rows(job["job_id"])[device]
        assert row["execution_number"] == attempt
        if attempt < 3:
            assert job_row(job["job_id"])["status"] != "FAILED"
            assert retries.retry_failed_rows(now()).moved_rows == 1
            assert delivered(device)
    assert retries.retry_failed_rows(now()).moved_rows == 0
    assert job_row(job["job_id"])["status"] == "FAILED"
    assert len(events(job["job_id"], "device_job.retried")) == 2


def test_timed_out_device_is_requeued_by_a_timed_out_criterion(settings):
    (device,) = fleet(1)
    job = execute(settings, {
        "timeout_config": {"in_progress_timeout_minutes": 1},
        "retry_config": {"criteria_list": [{"failure_type": "TIMED_OUT", "number_of_retries": 1}]},
    })
    report(device, job["job_id"], "IN_PROGRESS")
    carry_out(timeouts.time_out_overdue(now() + timedelta(minutes=2), SWEEP_SETTINGS), settings)
    assert job_row(job["job_id"])["status"] == "IN_PROGRESS"
    retries.retry_failed_rows(now())
    row = rows(job["job_id"])[device]
    assert (row["status"], row["execution_number"]) == ("QUEUED", 2)


def test_retries_are_counted_per_failure_type(settings):
    (device,) = fleet(1)
    job = execute(settings, {
        "timeout_config": {"in_progress_timeout_minutes": 1},
        "retry_config": {"criteria_list": [{"failure_type": "FAILED", "number_of_retries": 1},
                                           {"failure_type": "TIMED_OUT", "number_of_retries": 1}]},
    })

    def attempt(ends_in: str) -> int:
        if ends_in == "TIMED_OUT":
            report(device, job["job_id"], "IN_PROGRESS")
            timeouts.time_out_overdue(now() + timedelta(minutes=2), SWEEP_SETTINGS)
        else:
            report(device, job["job_id"], ends_in)
        return retries.retry_failed_rows(now()).moved_rows

    # One FAILED retry used does not use up the TIMED_OUT retry, nor the other way round.
    assert attempt("FAILED") == 1
    assert attempt("TIMED_OUT") == 1
    assert attempt("FAILED") == 0
    row = rows(job["job_id"])[device]
    assert (row["status"], row["execution_number"]) == ("FAILED", 3)
    carry_out(Outcome(may_have_completed={job["job_id"]}), settings)
    assert job_row(job["job_id"])["status"] == "FAILED"


def test_an_all_criterion_counts_every_failure_retried(settings):
    (device,) = fleet(1)
    job = execute(settings, {
        "timeout_config": {"in_progress_timeout_minutes": 1},
        "retry_config": {"criteria_list": [{"failure_type": "FAILED", "number_of_retries": 5},
                                           {"failure_type": "ALL", "number_of_retries": 1}]},
    })
    report(device, job["job_id"], "FAILED")
    assert retries.retry_failed_rows(now()).moved_rows == 1  # FAILED: 1 of 5
    report(device, job["job_id"], "IN_PROGRESS")
    timeouts.time_out_overdue(now() + timedelta(minutes=2), SWEEP_SETTINGS)
    assert retries.retry_failed_rows(now()).moved_rows == 0  # ALL: the FAILED one counts
    report_again = rows(job["job_id"])[device]
    assert (report_again["status"], report_again["execution_number"]) == ("TIMED_OUT", 2)


# --- abort ---------------------------------------------------------------------------------

def test_abort_threshold_cancels_the_queued_rest_with_the_reason(settings):
    devices = fleet(10)
    job = execute(settings, {"abort_config": {"criteria_list": [{
        "failure_type": "FAILED", "action": "CANCEL", "threshold_percentage": 50,
        "min_number_of_executed_devices": 4}]}})
    for device in devices[:3]:
        report(device, job["job_id"], "FAILED")
    report(devices[3], job["job_id"], "IN_PROGRESS")
    assert abort.apply_abort_criteria(now()).moved_rows == 0  # 3 executed < 4
    report(devices[3], job["job_id"], "SUCCEEDED")
    report(devices[4], job["job_id"], "IN_PROGRESS")
    outcome = abort.apply_abort_criteria(now())
    assert outcome.moved_rows == 5
    after = job_row(job["job_id"])
    assert after["status"] == "CANCELED"
    assert "75.0% of 4" in after["reason"]
    statuses = [r["status"] for r in rows(job["job_id"]).values()]
    assert statuses.count("CANCELED") == 5 and statuses.count("IN_PROGRESS") == 1
    assert len(events(job["job_id"], "job.aborted")) == 1
    assert len(events(job["job_id"], "device_job.canceled")) == 5


# --- scheduling ----------------------------------------------------------------------------

def test_job_starting_later_is_scheduled_and_fanned_out_at_its_start(settings):
    (device,) = fleet(1)
    start = now() + timedelta(hours=1)
    job = execute(settings, {"scheduling_config": {"start_time": start.isoformat()}})
    assert job["status"] == "SCHEDULED"
    assert scheduled_starts.start_due_jobs(now(), SWEEP_SETTINGS).fan_outs == []
    assert scheduled_starts.start_due_jobs(start, SWEEP_SETTINGS).fan_outs == [job["job_id"]]
    fan_out(job["job_id"], settings)
    assert job_row(job["job_id"])["status"] == "QUEUED"
    assert delivered(device)
    assert len(events(job["job_id"], "job.started")) == 1


@pytest.mark.parametrize(
    ("behavior", "queued_becomes", "running_becomes", "job_becomes"),
    [("CANCEL", "CANCELED", "IN_PROGRESS", "CANCELED"),
     ("FORCE_CANCEL", "CANCELED", "CANCELED", "CANCELED")],
)
def test_end_behavior_at_the_end_time(settings, behavior, queued_becomes, running_becomes,
                                      job_becomes):
    queued, running = fleet(2)
    end = now() + timedelta(hours=1)
    job = execute(settings, {"scheduling_config": {"end_time": end.isoformat(),
                                                   "end_behavior": behavior}})
    report(running, job["job_id"], "IN_PROGRESS")
    assert end_times.end_jobs_past_end_time(now(), SWEEP_SETTINGS).moved_rows == 0
    end_times.end_jobs_past_end_time(end + timedelta(seconds=1), SWEEP_SETTINGS)
    latest = rows(job["job_id"])
    assert (latest[queued]["status"], latest[running]["status"]) == (queued_becomes,
                                                                    running_becomes)
    assert job_row(job["job_id"])["status"] == job_becomes


def test_stop_rollout_removes_rows_never_released_and_lets_released_ones_run(settings):
    devices = fleet(4)
    end = now() + timedelta(hours=1)
    job = execute(settings, {"rollout_config": {"maximum_per_minute": 1},
                             "scheduling_config": {"end_time": end.isoformat()}})
    rollout.release_waves(now())
    outcome = end_times.end_jobs_past_end_time(end, SWEEP_SETTINGS)
    assert outcome.moved_rows == 3
    assert rollout.release_waves(end + timedelta(minutes=5)).moved_rows == 0
    assert sum(delivered(d) for d in devices) == 1
    assert len(events(job["job_id"], "device_job.removed")) == 3


def test_maintenance_window_gates_delivery(settings):
    inside, outside = fleet(2)
    opened = now() - timedelta(minutes=1)
    later = now() + timedelta(minutes=30)
    open_now = [{"start": f"{opened.minute} {opened.hour} * * *", "duration_minutes": 5}]
    closed_now = [{"start": f"{later.minute} {later.hour} * * *", "duration_minutes": 5}]
    execute(settings, {"scheduling_config": {"maintenance_windows": open_now}},
            devices=[inside])
    late = execute(settings, {"scheduling_config": {"maintenance_windows": closed_now}},
                   devices=[outside])
    assert delivered(inside)
    assert not delivered(outside)
    row = job_row(late["job_id"])
    assert row["window_opens_at"] > now()
    # After its window closes, the sweep moves a job on to its next window (tomorrow).
    assert advance_windows(row["window_opens_at"], SWEEP_SETTINGS).moved_rows == 1
    assert advance_windows(row["window_closes_at"], SWEEP_SETTINGS).moved_rows == 1
    assert job_row(late["job_id"])["window_opens_at"] > row["window_opens_at"]


def test_the_devices_of_a_job_are_nudged_once_when_its_window_opens(settings):
    fleet(2)
    later = now() + timedelta(minutes=30)
    windows = [{"start": f"{later.minute} {later.hour} * * *", "duration_minutes": 5}]
    job_id = execute(settings, {"scheduling_config": {"maintenance_windows": windows}})["job_id"]
    opens_at = job_row(job_id)["window_opens_at"]
    assert advance_windows(now(), SWEEP_SETTINGS).job_nudges == set()
    assert advance_windows(
        opens_at - timedelta(seconds=1), SWEEP_SETTINGS).job_nudges == set()

    # Two beats sweep the opening at once: one of them nudges.
    claimed: list = []
    at = opens_at + timedelta(seconds=2)
    beats = [threading.Thread(target=lambda: claimed.extend(
        advance_windows(at, SWEEP_SETTINGS).job_nudges)) for _ in range(3)]
    for beat in beats:
        beat.start()
    for beat in beats:
        beat.join()
    assert claimed == [(job_id, "queued")]
    assert advance_windows(at, SWEEP_SETTINGS).job_nudges == set()

    # Tomorrow's window is nudged again.
    closes_at = job_row(job_id)["window_closes_at"]
    assert advance_windows(closes_at, SWEEP_SETTINGS).moved_rows == 1
    tomorrow = job_row(job_id)["window_opens_at"]
    assert tomorrow > opens_at
    assert advance_windows(tomorrow, SWEEP_SETTINGS).job_nudges == {
        (job_id, "queued")}


def test_a_job_left_uncompleted_after_its_last_rows_moved_is_completed_by_the_sweep(settings):
    """The rows of a job moved to terminal statuses by a process that died before completing
    the job (here: moved by hand, counters kept by the triggers): the sweep completes it, once;
    a job with a device still pending stays as it is."""
    fleet(2)
    left, pending = execute(settings), execute(settings)
    with db.connect() as c:
        c.conn.execute("UPDATE device_job_status SET status = 'TIMED_OUT' WHERE job_id = %s",
                       (left["job_id"],))
        c.conn.execute("UPDATE device_job_status SET status = 'TIMED_OUT' WHERE job_id = %s"
                       " AND device_uuid = (SELECT min(device_uuid::text)::uuid FROM"
                       " device_job_status WHERE job_id = %s)",
                       (pending["job_id"], pending["job_id"]))
    for _ in range(2):
        outcome = finished_jobs.complete_finished_jobs(now(), SWEEP_SETTINGS)
        carry_out(outcome, SWEEP_SETTINGS)
    assert job_row(left["job_id"])["status"] == "FAILED"
    assert len(events(left["job_id"], "job.completed")) == 1
    assert job_row(pending["job_id"])["status"] == "QUEUED"


# --- recurring -----------------------------------------------------------------------------

def recurring_job(settings, schedule: dict) -> dict:
    fleet(2)
    return execute(settings, {"execution_type": "recurring", "schedule": schedule})


def test_recurring_job_fires_once_per_slot_even_with_concurrent_beats(settings):
    parent = recurring_job(settings, {"cron": "* * * * * */5"})
    assert parent["status"] == "SCHEDULED"
    first = job_row(parent["job_id"])["next_run_at"]
    fired: list = []

    def beat(at):
        fired.extend(recurring.fire_due_runs(at).fan_outs)

    for tick in (0, 1, 2, 5, 6, 10):
        at = first + timedelta(seconds=tick)
        threads = [threading.Thread(target=beat, args=(at,)) for _ in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    runs = recurring.list_runs(parent["job_id"], 50, 0)
    assert runs["total"] == len(fired) == 3
    assert sorted(r["scheduled_for"] for r in runs["runs"]) == [
        first, first + timedelta(seconds=5), first + timedelta(seconds=10)]
    assert len(events(parent["job_id"], "job.run_fired")) == 3
    for run_job_id in fired:
        fan_out(run_job_id, settings)
        assert job_row(run_job_id)["total_devices"] == 2


def test_catch_up_after_an_outage_fires_once_and_max_runs_ends_the_schedule(settings):
    parent = recurring_job(settings, {"cron": "* * * * * */5", "max_runs": 2})
    first = job_row(parent["job_id"])["next_run_at"]
    assert len(recurring.fire_due_runs(first + timedelta(minutes=5)).fan_outs) == 1
    fired = events(parent["job_id"], "job.run_fired")
    assert fired[0]["details"]["skipped_slots"] == 60
    assert len(recurring.fire_due_runs(first + timedelta(minutes=6)).fan_outs) == 1
    assert recurring.fire_due_runs(first + timedelta(minutes=7)).fan_outs == []
    ended = job_row(parent["job_id"])
    assert (ended["status"], ended["run_count"], ended["next_run_at"]) == ("SUCCEEDED", 2, None)


# --- continuous ----------------------------------------------------------------------------

def test_continuous_job_follows_the_group(settings):
    fleet(1, environment="production")
    job = execute(settings, {"execution_type": "continuous"},
                  target_filter={"environment": "production"})
    # Registration and attribute changes reconcile the device at once, no beat needed.
    newcomer = fleet(1, environment="production")[0]
    assert delivered(newcomer)
    assert job_row(job["job_id"])["total_devices"] == 2

    quietly(update_device(newcomer, {"attributes": {"environment": "staging"}}, ACTOR))
    assert rows(job["job_id"])[newcomer]["status"] == "REMOVED"
    assert not delivered(newcomer)

    quietly(update_device(newcomer, {"attributes": {"environment": "production"}}, ACTOR))
    row = rows(job["job_id"])[newcomer]
    assert (row["status"], row["execution_number"]) == ("QUEUED", 2)
    assert len(events(job["job_id"], "device_job.removed")) == 1
    assert len(events(job["job_id"], "device_job.requeued")) == 1


def test_continuous_job_stays_open_when_every_device_is_done(settings):
    (device,) = fleet(1, environment="production")
    job = execute(settings, {"execution_type": "continuous"},
                  target_filter={"environment": "production"})
    report(device, job["job_id"], "SUCCEEDED")
    assert job_row(job["job_id"])["status"] == "IN_PROGRESS"


def test_continuous_needs_a_group_or_all(settings):
    from dispatcher.errors import InvalidInput

    devices = fleet(1)
    with pytest.raises(InvalidInput) as info:
        execute(settings, {"execution_type": "continuous"}, devices=devices)
    assert "execution_type" in info.value.errors
