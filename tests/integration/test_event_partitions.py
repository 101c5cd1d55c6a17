"""The audit trail is partitioned by month: months are created ahead by a sweep, an expired
month is dropped whole unless it holds a live job's events (those stay, the rest of the month is
deleted in batches), the API and the portal read events across months as before, and the
migration to partitions keeps every event of an existing database."""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import psycopg
from job_rows import insert_job, register_fleet, set_row_status
from suite_constants import PG_ADMIN_URL, TEST_ADMIN_TOKEN
from test_portal import sign_in
from test_retention import count, events_of, finish, poll, retention_settings

from dispatcher import db
from dispatcher.config import Settings
from dispatcher.maintenance import SWEEPS, event_partitions, retention
from dispatcher.maintenance.retention import month_start
from dispatcher.migrate import available_migrations, migrate
from workers.periodic import beat_schedule, run_sweep

NOW = datetime.now(UTC)
# Two consecutive months wholly past AUDIT_RETENTION_DAYS (730) and their next one.
OLD_MONTH = month_start(NOW - timedelta(days=900))
NEXT_MONTH = month_start(OLD_MONTH + timedelta(days=32))


def partition(moment: datetime) -> str:
    return f"job_events_p{moment.astimezone(UTC):%Y%m}"


def exists(table: str) -> bool:
    with db.pool().connection() as conn:
        return conn.execute("SELECT to_regclass(%s) AS t", (table,)).fetchone()["t"] is not None


def event_at(moment: datetime, job_id: uuid.UUID | None, action: str = "job.created") -> str:
    """Insert one event happened at ``moment``; answer the partition it landed in."""
    with db.pool().connection() as conn:
        return conn.execute(
            "INSERT INTO job_events (occurred_at, actor, action, target_type, target_id, job_id)"
            " VALUES (%s, 'admin', %s, 'job', %s, %s) RETURNING tableoid::regclass::text AS t",
            (moment, action, str(job_id), job_id)).fetchone()["t"]


def create_months(at: datetime) -> int:
    return event_partitions.create_event_partitions(at, Settings()).moved_rows


def test_months_are_created_ahead_and_new_events_land_in_theirs(app, settings):
    assert run_sweep(event_partitions.SWEEP, settings) == event_partitions.MONTHS_AHEAD + 1
    assert run_sweep(event_partitions.SWEEP, settings) == 0, "a second run finds them there"
    for ahead in range(event_partitions.MONTHS_AHEAD + 1):
        assert exists(partition(month_start(NOW) + timedelta(days=32 * ahead)))
    assert event_at(NOW, None) == partition(NOW)

    # A month without its partition (the sweep did not run for months): the event is kept in
    # the default partition, and moves into its month when the month is created.
    later = month_start(NOW) + timedelta(days=32 * 6)
    job_id = uuid.uuid4()
    assert event_at(later, job_id) == "job_events_default"
    assert create_months(later) == event_partitions.MONTHS_AHEAD + 1
    with db.pool().connection() as conn:
        assert conn.execute("SELECT tableoid::regclass::text AS t FROM job_events"
                            " WHERE job_id = %s", (job_id,)).fetchone()["t"] == partition(later)
    assert count("SELECT count(*) AS n FROM job_events_default") == 0


def test_an_expired_month_is_dropped_whole_and_a_month_with_a_live_jobs_events_keeps_them(
        app, client, settings):
    create_months(OLD_MONTH)
    fleet = register_fleet(3)
    done = insert_job(fleet, job_name="Done long ago")
    finish(done, "SUCCEEDED", timedelta(days=10))
    live = insert_job(fleet[:1], job_name="Still running")
    set_row_status(live, fleet[0], "IN_PROGRESS")
    old_month = [event_at(OLD_MONTH + timedelta(days=day), done) for day in (1, 2, 3)]
    old_month.append(event_at(OLD_MONTH + timedelta(days=4), None))
    next_month = [event_at(NEXT_MONTH + timedelta(days=1), live),
                  event_at(NEXT_MONTH + timedelta(days=2), done),
                  event_at(NEXT_MONTH + timedelta(days=3), None)]
    assert set(old_month) == {partition(OLD_MONTH)}
    assert set(next_month) == {partition(NEXT_MONTH)}

    moved = run_sweep(retention.SWEEP, retention_settings(settings))

    assert not exists(partition(OLD_MONTH)), "the expired month is dropped whole"
    assert exists(partition(NEXT_MONTH)), "the month holding a live job's events stays"
    assert moved == 4 + 2
    assert count(f"SELECT count(*) AS n FROM {partition(NEXT_MONTH)}") == 1
    assert (events_of(live), events_of(done)) == (1, 0)
    with db.pool().connection() as conn:
        prune = conn.execute("SELECT * FROM history_prunes WHERE kind = 'audit_events'"
                             ).fetchone()
    assert prune["rows_removed"] == 6
    assert prune["pruned_before"] == month_start(NOW - timedelta(days=730))
    assert poll(client, fleet[1]).get("message") == "No pending jobs"
    assert run_sweep(retention.SWEEP, retention_settings(settings)) == 0


def test_a_month_busy_with_a_long_read_is_left_to_the_next_run(app, settings, monkeypatch):
    monkeypatch.setattr(retention, "DROP_LOCK_TIMEOUT_MS", 50)
    create_months(OLD_MONTH)
    event_at(OLD_MONTH + timedelta(days=1), None)
    reader = psycopg.connect(settings.database_url)
    try:
        reader.execute("SELECT count(*) FROM job_events")  # holds the table until it ends
        assert run_sweep(retention.SWEEP, retention_settings(settings)) == 0
        assert exists(partition(OLD_MONTH))
        assert count(f"SELECT count(*) AS n FROM {partition(OLD_MONTH)}") == 1, \
            "its rows are not deleted one by one meanwhile"
    finally:
        reader.close()
    assert run_sweep(retention.SWEEP, retention_settings(settings)) == 1
    assert not exists(partition(OLD_MONTH))


def test_the_api_and_the_portal_read_a_jobs_events_across_months(app, client, admin_headers):
    fleet = register_fleet(1)
    job_id = insert_job(fleet, job_name="Across months")
    create_months(NOW - timedelta(days=40))
    event_at(NOW - timedelta(days=40), job_id, "job.first")  # an earlier month
    event_at(NOW + timedelta(days=400), job_id, "job.last")  # the default partition
    answer = client.get(f"/api/v1/jobs/executions/{job_id}/events?limit=100",
                        headers=admin_headers)
    assert answer.status_code == 200
    actions = [event["action"] for event in answer.get_json()["events"]]
    assert actions[-1] == "job.last" and "job.first" in actions
    assert answer.get_json()["total"] == len(actions) == events_of(job_id)
    sign_in(client, TEST_ADMIN_TOKEN)
    page = client.get(f"/portal/executions/{job_id}").get_data(as_text=True)
    assert "job.first" in page and "job.last" in page


def test_the_sweep_is_periodic_work_at_its_setting(settings):
    assert event_partitions.SWEEP in SWEEPS
    assert event_partitions.SWEEP.task_name == "maintenance.create_event_partitions"
    schedule = beat_schedule(replace(settings, event_partitions_sweep_interval_s=600))
    assert schedule["create-event-partitions"]["schedule"] == 600.0


def test_migrating_a_database_with_events_keeps_every_one(database_url):
    partitioned = next(m.version for m in available_migrations()
                       if m.name == "job_events_by_month")
    name = f"djtest_events_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = psycopg.conninfo.make_conninfo(PG_ADMIN_URL, dbname=name)
    try:
        migrate(url, up_to=partitioned - 1)
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(
                "INSERT INTO job_events (occurred_at, actor, action, target_type, target_id,"
                " job_id, device_uuid, details)"
                " SELECT now() - make_interval(days => i * 7), 'admin', 'job.created', 'job',"
                " i::text, md5(i::text)::uuid, md5('d' || i)::uuid, jsonb_build_object('i', i)"
                " FROM generate_series(0, 99) AS i")
            before = conn.execute("SELECT * FROM job_events ORDER BY id").fetchall()
        assert migrate(url) == [m.version for m in available_migrations()
                                if m.version >= partitioned]
        with psycopg.connect(url, autocommit=True) as conn:
            assert conn.execute("SELECT * FROM job_events ORDER BY id").fetchall() == before
            assert conn.execute("SELECT count(*) FROM job_events_default").fetchone()[0] == 0
            months = conn.execute("SELECT count(DISTINCT tableoid) FROM job_events").fetchone()[0]
            assert months == conn.execute(
                "SELECT count(DISTINCT date_trunc('month', occurred_at AT TIME ZONE 'UTC'))"
                " FROM job_events").fetchone()[0] > 20
            new_id = conn.execute(
                "INSERT INTO job_events (actor, action, target_type, target_id)"
                " VALUES ('admin', 'job.created', 'job', 'x') RETURNING id").fetchone()[0]
            assert new_id > before[-1][0], "ids go on from the same sequence"
    finally:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
