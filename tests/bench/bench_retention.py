"""Retention benchmark: finished history past RETENTION_DAYS removed two ways on the same data,
while devices keep polling ``GET /jobs/next`` through gunicorn (every device has a live job, so
each poll reads PostgreSQL).

- the retention sweep as shipped (``dispatcher.maintenance.retention``): batched, paced DELETEs
  of the device rows, then the executions; the audit events (``job_events`` is partitioned by
  month) by whole months, each expired month dropped, except the oldest one, which holds an
  event of the live job: that month's other events are deleted in batches;
- the experiment: the same rows in copies of ``device_job_status`` and ``job_events``
  partitioned by month (declarative partitioning, the same indexes, unique ones made plain since
  a unique index of a partitioned table must hold the partition key), the expired months
  detached and dropped whole (the live job's event ignored).

The data lives in a PostgreSQL server of the benchmark's own (``tests/private_postgres.py``),
so that the WAL it counts is written by nothing else; autovacuum is off on the four tables, and
the VACUUM that DELETEs need afterwards is run and counted with them.

Figures, all from the same run: wall time, WAL written, each table's heap and index size before
and after (and after VACUUM for the DELETEs, whose space is reused, not returned), and poll
p50/p99 while each runs next to the same load with neither.

    .venv/bin/python tests/bench/bench_retention.py [--devices 50000] [--old-jobs 10]
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
import uuid
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import psycopg
from bench_support import (
    bench_database,
    gunicorn,
    insert_job,
    register_fleet,
    require_wrk,
    temp_path,
    vacuum_analyze,
    write_device_list,
    wrk,
)

from dispatcher import db
from dispatcher.config import Settings
from dispatcher.maintenance import retention

sys.path.insert(0, str(Path(__file__).parents[1]))
from private_postgres import PrivatePostgres  # noqa: E402

LIVE_JOB = uuid.uuid5(uuid.NAMESPACE_URL, "bench-retention-live")
OLD_AGE_DAYS = 200  # past RETENTION_DAYS (180): removed
RECENT_AGE_DAYS = 20  # kept

FINISHED_JOB_SQL = """
UPDATE job_executions SET status = 'SUCCEEDED', queued_at = now() - make_interval(days => %(age)s),
       completed_at = now() - make_interval(days => %(age)s) + interval '1 hour'
 WHERE job_id = %(job_id)s
"""
FINISHED_ROWS_SQL = """
INSERT INTO device_job_status (job_id, device_uuid, status, queued_at, started_at, completed_at,
                               last_updated_at, exit_code, stdout, version_number)
SELECT %(job_id)s, md5('bench-device-' || i)::uuid, 'SUCCEEDED',
       now() - make_interval(days => %(age)s), now() - make_interval(days => %(age)s),
       now() - make_interval(days => %(age)s), now() - make_interval(days => %(age)s), 0,
       'Filesystem      Size  Used Avail Use%% Mounted on', 3
  FROM generate_series(1, %(devices)s) AS i
"""
FINISHED_EVENTS_SQL = """
INSERT INTO job_events (occurred_at, actor, action, target_type, target_id, job_id, device_uuid,
                        details)
SELECT now() - make_interval(days => %(age)s), 'device', 'device_job.succeeded', 'device_job',
       device_job_target_id(%(job_id)s, md5('bench-device-' || i)::uuid), %(job_id)s,
       md5('bench-device-' || i)::uuid, '{"from": "IN_PROGRESS", "to": "SUCCEEDED"}'
  FROM generate_series(1, %(devices)s) AS i
"""
# An event of the live job in the oldest month of events: the sweep keeps that month.
LIVE_EVENT_SQL = """
INSERT INTO job_events (occurred_at, actor, action, target_type, target_id, job_id)
VALUES (now() - make_interval(days => %(age)s), 'admin', 'job.created', 'job', %(job_id)s,
        %(job_id)s)
"""
# The events' months get their partitions (moved out of the default partition).
EVENT_MONTHS_SQL = """
SELECT create_job_events_month(min(occurred_at)) FROM job_events
 GROUP BY date_trunc('month', occurred_at AT TIME ZONE 'UTC')
"""
LIVE_ROWS_SQL = """
INSERT INTO device_job_status (job_id, device_uuid)
SELECT %(job_id)s, md5('bench-device-' || i)::uuid FROM generate_series(1, %(devices)s) AS i
"""

# The experiment: monthly partitions of copies of the two history tables.
PARTITIONED_SQL = """
CREATE TABLE part_device_job_status (LIKE device_job_status INCLUDING DEFAULTS)
    PARTITION BY RANGE (queued_at);
CREATE TABLE part_job_events (LIKE job_events INCLUDING DEFAULTS) PARTITION BY RANGE (occurred_at);
"""
PARTITION_INDEXES_SQL = """
CREATE INDEX ON part_device_job_status (device_uuid, id DESC);
CREATE INDEX ON part_device_job_status (job_id, status, device_uuid) WHERE is_latest;
CREATE INDEX ON part_device_job_status (job_id, device_uuid) WHERE is_latest;
CREATE INDEX ON part_device_job_status (device_uuid, queued_at)
    WHERE status IN ('QUEUED', 'IN_PROGRESS');
CREATE INDEX ON part_device_job_status (job_id);
CREATE INDEX ON part_device_job_status (job_id)
    WHERE is_latest AND status IN ('FAILED', 'TIMED_OUT');
CREATE INDEX ON part_device_job_status (timeout_at)
    WHERE status IN ('QUEUED', 'IN_PROGRESS') AND timeout_at IS NOT NULL;
CREATE INDEX ON part_device_job_status (job_id, id) WHERE released_at IS NULL AND status = 'QUEUED';
CREATE INDEX ON part_job_events (job_id, id) WHERE job_id IS NOT NULL;
CREATE INDEX ON part_job_events (target_type, target_id, id);
CREATE INDEX ON part_job_events USING brin (occurred_at);
"""
COPY_INTO_PARTITIONS_SQL = """
INSERT INTO part_device_job_status SELECT * FROM device_job_status;
INSERT INTO part_job_events SELECT * FROM job_events;
"""


def months(conn: psycopg.Connection, table: str, column: str) -> list[datetime]:
    return [row[0] for row in conn.execute(
        f"SELECT DISTINCT date_trunc('month', {column}) FROM {table.removeprefix('part_')}"
        " ORDER BY 1").fetchall()]


def build(url: str, devices: int, old_jobs: int) -> None:
    started = time.monotonic()
    register_fleet(url, devices)
    insert_job(url, LIVE_JOB, "bench live job", "QUEUED", devices)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(LIVE_ROWS_SQL, {"job_id": LIVE_JOB, "devices": devices})
    ages = [OLD_AGE_DAYS + 7 * k for k in range(old_jobs)] + [RECENT_AGE_DAYS, RECENT_AGE_DAYS + 7]
    for k, age in enumerate(ages):
        job_id = uuid.uuid5(uuid.NAMESPACE_URL, f"bench-retention-{k}")
        insert_job(url, job_id, f"bench finished job {k}", "QUEUED", devices)
        with psycopg.connect(url, autocommit=True) as conn:
            params = {"job_id": job_id, "age": age, "devices": devices}
            conn.execute(FINISHED_JOB_SQL, params)
            conn.execute(FINISHED_ROWS_SQL, params)
            conn.execute(FINISHED_EVENTS_SQL, {**params, "age": age + 600})
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(LIVE_EVENT_SQL, {"job_id": LIVE_JOB, "age": max(ages) + 600})
        conn.execute(EVENT_MONTHS_SQL)
        conn.execute(PARTITIONED_SQL)
        for table, column in (("part_device_job_status", "queued_at"),
                              ("part_job_events", "occurred_at")):
            for month in months(conn, table, column):
                name = f"{table}_{month:%Y%m}"
                conn.execute(f"CREATE TABLE {name} PARTITION OF {table} FOR VALUES FROM"
                             f" ('{month.isoformat()}') TO ('{month.isoformat()}'::timestamptz"
                             " + interval '1 month')")
        conn.execute(PARTITION_INDEXES_SQL)
        conn.execute(COPY_INTO_PARTITIONS_SQL)
        for table in ("device_job_status", "job_events", "part_device_job_status",
                      "part_job_events"):
            for (name,) in leaves(conn, table):
                conn.execute(f"ALTER TABLE {name} SET (autovacuum_enabled = off)")
    vacuum_analyze(url)
    total = devices * (len(ages) + 1)
    print(f"data: {devices} devices, {total} device rows ({devices * old_jobs} past retention), "
          f"{devices * len(ages)} audit events ({devices * old_jobs} past"
          f" AUDIT_RETENTION_DAYS), built in {time.monotonic() - started:.0f} s")


def leaves(conn: psycopg.Connection, table: str) -> list[tuple[str]]:
    """The table itself, or the partitions of a partitioned one."""
    return conn.execute(
        "SELECT relid::regclass::text FROM pg_partition_tree(%s::regclass) WHERE isleaf",
        (table,)).fetchall() or [(table,)]


def sizes(conn: psycopg.Connection, tables: tuple[str, ...]) -> tuple[int, int]:
    """Heap and index bytes of ``tables`` and, for partitioned ones, their partitions."""
    heap = index = 0
    for table in tables:
        for (name,) in leaves(conn, table):
            heap += conn.execute("SELECT pg_table_size(%s::regclass)", (name,)).fetchone()[0]
            index += conn.execute("SELECT pg_indexes_size(%s::regclass)", (name,)).fetchone()[0]
    return heap, index


def wal_lsn(conn: psycopg.Connection) -> str:
    return conn.execute("SELECT pg_current_wal_lsn()::text").fetchone()[0]


def wal_since(conn: psycopg.Connection, lsn: str) -> int:
    return int(conn.execute("SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), %s::pg_lsn)",
                            (lsn,)).fetchone()[0])


def sweep_until_done(settings: Settings) -> int:
    removed = 0
    while moved := retention.prune_history(datetime.now(UTC), settings).moved_rows:
        removed += moved
    return removed


def drop_expired_partitions(url: str, settings: Settings) -> int:
    """Detach and drop every monthly partition wholly before the cutoffs."""
    dropped = 0
    with psycopg.connect(url, autocommit=True) as conn:
        for table, days in (("part_device_job_status", settings.retention_days),
                            ("part_job_events", settings.audit_retention_days)):
            cutoff = conn.execute("SELECT now() - make_interval(days => %s)",
                                  (days,)).fetchone()[0]
            for (name, bound) in conn.execute(
                    "SELECT c.relname, pg_get_expr(c.relpartbound, c.oid) FROM pg_inherits i"
                    " JOIN pg_class c ON c.oid = i.inhrelid"
                    " WHERE i.inhparent = %s::regclass", (table,)).fetchall():
                upper = bound.split("TO ('", 1)[1].split("')", 1)[0]
                if conn.execute("SELECT %s::timestamptz <= %s", (upper, cutoff)).fetchone()[0]:
                    conn.execute(f"ALTER TABLE {table} DETACH PARTITION {name}")
                    conn.execute(f"DROP TABLE {name}")
                    dropped += 1
    return dropped


def measured(url: str, label: str, tables: tuple[str, ...], work, base_url: str,
             devices_file, args) -> dict:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CHECKPOINT")
        before = sizes(conn, tables)
    done: dict = {}

    def run() -> None:
        time.sleep(1)  # let the load settle first
        with psycopg.connect(url, autocommit=True) as conn:
            started, lsn = time.monotonic(), wal_lsn(conn)
            done["result"] = work()
            done["seconds"] = time.monotonic() - started
            done["wal"] = wal_since(conn, lsn)

    worker = threading.Thread(target=run)
    worker.start()
    load = wrk(base_url, "next", devices_file, args.duration, args.connections)
    worker.join()
    with psycopg.connect(url, autocommit=True) as conn:
        after = sizes(conn, tables)
        started, lsn = time.monotonic(), wal_lsn(conn)
        conn.execute("VACUUM " + ", ".join(tables))
        vacuum_s = time.monotonic() - started
        vacuumed = sizes(conn, tables)
        vacuum_wal = wal_since(conn, lsn)
    if done["seconds"] > args.duration - 1:
        print(f"note: {label} outlasted the measured poll window; raise --duration")
    return {"label": label, "seconds": done["seconds"], "result": done["result"],
            "wal": done["wal"],
            "before": before, "after": after, "vacuumed": vacuumed, "load": load,
            "vacuum_s": vacuum_s, "vacuum_wal": vacuum_wal}


def mb(n: int) -> str:
    return f"{n / 2**20:.0f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=50_000)
    parser.add_argument("--old-jobs", type=int, default=10,
                        help="finished jobs past retention, each on every device")
    parser.add_argument("--duration", type=int, default=60, help="seconds per wrk run")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--port", type=int, default=18443)
    args = parser.parse_args()
    require_wrk()

    devices_file = temp_path("devices.txt")
    write_device_list(args.devices, devices_file)
    settings = Settings()  # the defaults: 180 days, 730 days for audit, 50 ms between batches
    server = PrivatePostgres()
    server.start()
    try:
        run(server.url, settings, devices_file, args)
    finally:
        server.remove()


def run(admin_url: str, settings: Settings, devices_file: Path, args) -> None:
    with bench_database("djbench_retention", admin_url) as url:
        build(url, args.devices, args.old_jobs)
        db.configure(replace(settings, database_url=url))
        with gunicorn(url, args.port) as base_url:
            wrk(base_url, "next", devices_file, 5, args.connections)  # warm-up
            with psycopg.connect(url, autocommit=True) as conn:
                lsn = wal_lsn(conn)
                quiet = wrk(base_url, "next", devices_file, args.duration, args.connections)
                quiet_wal = wal_since(conn, lsn)
            batched = measured(url, "the sweep (DELETEs, months)",
                               ("device_job_status", "job_events"),
                               lambda: sweep_until_done(settings), base_url, devices_file, args)
            partitions = measured(url, "monthly partitions dropped",
                                  ("part_device_job_status", "part_job_events"),
                                  lambda: drop_expired_partitions(url, settings), base_url,
                                  devices_file, args)
        db.close()

    print(f"the sweep: {batched['result']} rows in {batched['seconds']:.1f} s (device rows in"
          f" batches of {retention.BATCH_SIZE}, {settings.retention_pause_ms} ms apart, audit"
          " events by months);"
          f" partitions: {partitions['result']} dropped in {partitions['seconds']:.2f} s")
    print(f"{'':<30}{'wall s':>8}{'WAL MB':>8}{'VACUUM s':>10}{'its WAL MB':>11}"
          f"{'heap MB before/after/vacuumed':>31}{'index MB before/after/vacuumed':>32}")
    for done in (batched, partitions):
        heaps = "/".join(mb(done[k][0]) for k in ("before", "after", "vacuumed"))
        indexes = "/".join(mb(done[k][1]) for k in ("before", "after", "vacuumed"))
        print(f"{done['label']:<30}{done['seconds']:>8.1f}{mb(done['wal']):>8}"
              f"{done['vacuum_s']:>10.1f}{mb(done['vacuum_wal']):>11}{heaps:>31}{indexes:>32}")
    print(f"WAL written by the polls alone (last_seen_at): {quiet_wal / args.duration / 2**20:.1f}"
          " MB/s"
          " (included in the WAL figures above, which are of the work's own wall time)")
    print(f"{'GET /jobs/next':<30}{'req/s':>10}{'p50 ms':>10}{'p99 ms':>10}{'errors':>9}")
    for label, load in (("with neither (floor)", quiet), ("while the sweep runs", batched["load"]),
                        ("while partitions drop", partitions["load"])):
        print(f"{label:<30}{load['rps']:>10.0f}{load['p50_ms']:>10.2f}{load['p99_ms']:>10.2f}"
              f"{load['errors']:>9}")


if __name__ == "__main__":
    main()
