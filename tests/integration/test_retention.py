"""History past its retention is removed by a sweep, in batches; what a live execution or the
audit of a live job needs stays, devices poll as before, and the API and portal say what was
pruned."""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from job_rows import Device, insert_job, register_fleet, set_row_status
from suite_constants import TEST_ADMIN_TOKEN
from test_portal import sign_in

from dispatcher import db
from dispatcher.maintenance import SWEEPS, retention
from workers.periodic import beat_schedule, run_sweep

NOW = datetime.now(UTC)


def retention_settings(settings, **changes):
    return replace(settings, **{"retention_days": 180, "retention_recurring_runs": 100,
                                "audit_retention_days": 730, "retention_pause_ms": 0,
                                **changes})


def finish(job_id: uuid.UUID, status: str, ago: timedelta) -> None:
    """The job ended ``ago``: its status and completion time, and its rows terminal."""
    with db.pool().connection() as conn:
        conn.execute("UPDATE device_job_status SET status = 'SUCCEEDED', completed_at = %s"
                     " WHERE job_id = %s AND status = 'QUEUED'", (NOW - ago, job_id))
        conn.execute("UPDATE job_executions SET status = %s, queued_at = %s, completed_at = %s"
                     " WHERE job_id = %s", (status, NOW - ago - timedelta(hours=1), NOW - ago,
                                            job_id))


def audit(job_id: uuid.UUID | None, ago: timedelta) -> None:
    with db.pool().connection() as conn:
        conn.execute(
            "INSERT INTO job_events (occurred_at, actor, action, target_type, target_id, job_id)"
            " VALUES (%s, 'admin', 'job.created', 'job', %s, %s)",
            (NOW - ago, str(job_id), job_id))


def count(sql: str, *params) -> int:
    with db.pool().connection() as conn:
        return conn.execute(sql, params).fetchone()["n"]


def rows_of(job_id: uuid.UUID) -> int:
    return count("SELECT count(*) AS n FROM device_job_status WHERE job_id = %s", job_id)


def job_kept(job_id: uuid.UUID) -> bool:
    return count("SELECT count(*) AS n FROM job_executions WHERE job_id = %s", job_id) == 1


def events_of(job_id: uuid.UUID) -> int:
    return count("SELECT count(*) AS n FROM job_events WHERE job_id = %s", job_id)


def poll(client, device: Device) -> dict:
    answer = client.get(f"/api/v1/devices/{device.uuid}/jobs/next", headers=device.headers)
    assert answer.status_code == 200, answer.get_data(as_text=True)
    return answer.get_json()


def test_finished_executions_past_retention_go_with_their_rows_and_live_ones_stay(
        app, client, settings, monkeypatch):
    monkeypatch.setattr(retention, "BATCH_SIZE", 3)  # several batches per job
    fleet = register_fleet(8)
    old = insert_job(fleet, job_name="Old diagnostic")
    finish(old, "SUCCEEDED", timedelta(days=200))
    recent = insert_job(fleet, job_name="Recent diagnostic")
    finish(recent, "FAILED", timedelta(days=10))
    # Canceled without force long ago, one device still runs it: an active execution.
    still_running = insert_job(fleet[:2], job_name="Still running")
    set_row_status(still_running, fleet[0], "IN_PROGRESS")
    finish(still_running, "CANCELED", timedelta(days=300))
    live = insert_job(fleet[2:4], job_name="Queued long ago")
    with db.pool().connection() as conn:
        conn.execute("UPDATE job_executions SET queued_at = %s WHERE job_id = %s",
                     (NOW - timedelta(days=400), live))
    for job in (old, recent, still_running, live):
        audit(job, timedelta(days=800))
    audit(None, timedelta(days=800))

    moved = run_sweep(retention.SWEEP, retention_settings(settings))

    assert (job_kept(old), rows_of(old)) == (False, 0)
    assert count("SELECT count(*) AS n FROM job_status_counts WHERE job_id = %s", old) == 0
    assert (job_kept(recent), rows_of(recent)) == (True, 8)
    assert (job_kept(still_running), rows_of(still_running)) == (True, 2)
    assert (job_kept(live), rows_of(live)) == (True, 2)
    assert moved == 8 + 1 + 3, "8 device rows, the job, 3 audit events past 730 days"
    assert (events_of(old), events_of(recent)) == (0, 0)
    assert (events_of(still_running), events_of(live)) == (1, 1), "the audit of live jobs stays"
    assert count("SELECT count(*) AS n FROM job_events WHERE job_id IS NULL"
                 " AND occurred_at < now() - interval '700 days'") == 0
    assert count("SELECT count(*) AS n FROM job_events WHERE job_id IS NULL") == 8, \
        "the devices' recent registrations stay"

    assert poll(client, fleet[0])["jobId"] == str(still_running)
    assert poll(client, fleet[2])["jobId"] == str(live)
    assert poll(client, fleet[5]).get("message") == "No pending jobs"

    again = run_sweep(retention.SWEEP, retention_settings(settings))
    assert again == 0, "a second run finds nothing more"


def test_a_recurring_job_keeps_its_newest_runs(app, settings):
    fleet = register_fleet(2)
    parent = insert_job(fleet[:0], job_name="Nightly")
    with db.pool().connection() as conn:
        conn.execute("UPDATE job_executions SET execution_type = 'recurring', status ="
                     " 'SCHEDULED' WHERE job_id = %s", (parent,))
    runs = []
    for day in range(5, 0, -1):
        run = insert_job(fleet, job_name="Nightly run")
        with db.pool().connection() as conn:
            conn.execute("UPDATE job_executions SET parent_job_id = %s, scheduled_for = %s"
                         " WHERE job_id = %s", (parent, NOW - timedelta(days=day), run))
        finish(run, "SUCCEEDED", timedelta(days=day))
        runs.append(run)
    running = insert_job(fleet, job_name="Nightly run")
    with db.pool().connection() as conn:
        conn.execute("UPDATE job_executions SET parent_job_id = %s, scheduled_for = %s"
                     " WHERE job_id = %s", (parent, NOW, running))

    run_sweep(retention.SWEEP, retention_settings(settings, retention_recurring_runs=2))

    assert [job_kept(run) for run in runs] == [False, False, False, False, True]
    assert [rows_of(run) for run in runs] == [0, 0, 0, 0, 2]
    assert job_kept(running) and rows_of(running) == 2, "the running run counts among the kept"
    assert job_kept(parent)
    with db.pool().connection() as conn:
        prune = conn.execute("SELECT * FROM history_prunes WHERE kind = 'recurring_runs'"
                             ).fetchone()
    assert prune["rows_removed"] == 4


def test_zero_keeps_history_forever(app, settings):
    fleet = register_fleet(2)
    old = insert_job(fleet)
    finish(old, "SUCCEEDED", timedelta(days=2000))
    audit(old, timedelta(days=2000))
    forever = retention_settings(settings, retention_days=0, retention_recurring_runs=0,
                                 audit_retention_days=0)
    assert run_sweep(retention.SWEEP, forever) == 0
    assert (job_kept(old), rows_of(old), events_of(old)) == (True, 2, 1)


def test_the_api_and_the_portal_say_when_history_was_pruned(app, client, settings,
                                                             admin_headers):
    listing = client.get("/api/v1/jobs/executions", headers=admin_headers).get_json()
    assert listing["history_pruned_before"] is None
    sign_in(client, TEST_ADMIN_TOKEN)
    assert 'id="history-pruned"' not in client.get("/portal/executions").get_data(as_text=True)

    fleet = register_fleet(1)
    finish(insert_job(fleet), "SUCCEEDED", timedelta(days=181))
    swept_from = datetime.now(UTC)
    run_sweep(retention.SWEEP, retention_settings(settings))
    swept_until = datetime.now(UTC)

    listing = client.get("/api/v1/jobs/executions", headers=admin_headers).get_json()
    pruned_before = datetime.fromisoformat(listing["history_pruned_before"])
    assert swept_from - timedelta(days=180) <= pruned_before <= swept_until - timedelta(days=180)
    page = client.get("/portal/executions").get_data(as_text=True)
    assert 'id="history-pruned"' in page
    assert pruned_before.strftime("%Y-%m-%d") in page


def test_the_sweep_is_periodic_work_at_its_setting(settings):
    assert retention.SWEEP in SWEEPS
    assert retention.SWEEP.task_name == "maintenance.prune_history"
    schedule = beat_schedule(replace(settings, retention_sweep_interval_s=600))
    assert schedule["prune-history"]["schedule"] == 600.0
