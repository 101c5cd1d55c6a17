"""Timeout sweep benchmark: 100,000 overdue IN_PROGRESS rows become TIMED_OUT (with one audit row
each) in SKIP LOCKED chunks, while devices keep polling ``GET /jobs/next`` through gunicorn.

Figures, all from the same run:
- sweep wall time with and without poll load, next to its floor: one bare ``UPDATE`` of the
  same rows (no chunks, no audit rows) on the same table;
- poll p50/p99 while the sweep runs, next to the same load without it.

    .venv/bin/python tests/bench/bench_timeout_sweep.py [--devices 100000] [--duration 30]
"""

from __future__ import annotations

import argparse
import threading
import time
import uuid
from datetime import UTC, datetime

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
from dispatcher.db import QUERIES
from dispatcher.maintenance import timeouts
from dispatcher.maintenance.sweep import REST_RATIO

JOB_ID = uuid.uuid5(uuid.NAMESPACE_URL, "bench-timeout-job")
# Every device is IN_PROGRESS on the job, and every deadline passed a minute ago.
OVERDUE_ROWS_SQL = """
INSERT INTO device_job_status (job_id, device_uuid, status, started_at, version_number,
                               timeout_at)
SELECT %(job_id)s, md5('bench-device-' || i)::uuid, 'IN_PROGRESS', now() - interval '11 minutes',
       2, now() - interval '1 minute'
  FROM generate_series(1, %(devices)s) AS i
"""
SET_TIMEOUT_CONFIG_SQL = """
UPDATE job_executions SET timeout_config = '{"in_progress_timeout_minutes": 10}'
 WHERE job_id = %(job_id)s
"""
BARE_TIMEOUT_SQL = """
UPDATE device_job_status SET status = 'TIMED_OUT', completed_at = now()
 WHERE status IN ('QUEUED', 'IN_PROGRESS') AND timeout_at <= now()
"""
RESET_SQL = """
UPDATE device_job_status SET status = 'IN_PROGRESS', completed_at = NULL
 WHERE job_id = %(job_id)s
"""


def build(url: str, devices: int) -> None:
    started = time.monotonic()
    register_fleet(url, devices)
    insert_job(url, JOB_ID, "bench timeout job", "IN_PROGRESS", devices)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(SET_TIMEOUT_CONFIG_SQL, {"job_id": JOB_ID})
        conn.execute(OVERDUE_ROWS_SQL, {"job_id": JOB_ID, "devices": devices})
    vacuum_analyze(url)
    print(f"data: {devices} devices, {devices} overdue IN_PROGRESS rows "
          f"in {time.monotonic() - started:.0f} s")


def put_rows_back(url: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(RESET_SQL, {"job_id": JOB_ID})
    vacuum_analyze(url)


def bare_update_floor(url: str) -> tuple[float, int]:
    """One plain UPDATE of every overdue row, then the rows are put back."""
    with psycopg.connect(url, autocommit=True) as conn:
        started = time.monotonic()
        moved = conn.execute(BARE_TIMEOUT_SQL).rowcount
        elapsed = time.monotonic() - started
    put_rows_back(url)
    return elapsed, moved


def one_statement(url: str, rows: int) -> float:
    """The sweep's own statement over every overdue row at once (the audit rows and every column
    it records, no chunks, no rests), rolled back: what the sweep's work costs above the bare
    UPDATE."""
    with psycopg.connect(url) as conn, conn.transaction(force_rollback=True):
        started = time.monotonic()
        conn.execute(QUERIES["time_out_overdue"], {
            "now": datetime.now(UTC), "chunk_size": rows, "reason": timeouts.TIMEOUT_REASON,
            "actor": "bench"})
        return time.monotonic() - started


def quiet_sweep(url: str) -> tuple[float, float]:
    """The sweep with no poll load, then the rows are put back: (wall time, of which its rests
    between chunks)."""
    rests: list[float] = []
    resting = timeouts.rest_after_chunk

    def counted(chunk_started: float) -> None:
        before = time.monotonic()
        resting(chunk_started)
        rests.append(time.monotonic() - before)

    timeouts.rest_after_chunk = counted
    try:
        started = time.monotonic()
        timeouts.time_out_overdue(datetime.now(UTC), Settings())
        elapsed = time.monotonic() - started
    finally:
        timeouts.rest_after_chunk = resting
    put_rows_back(url)
    return elapsed, sum(rests)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=100_000)
    parser.add_argument("--duration", type=int, default=30, help="seconds per wrk run")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--port", type=int, default=18433)
    args = parser.parse_args()
    require_wrk()

    devices_file = temp_path("devices.txt")
    write_device_list(args.devices, devices_file)
    with bench_database("djbench_timeout") as url:
        build(url, args.devices)
        floor_s, floor_rows = bare_update_floor(url)
        one_statement_s = one_statement(url, args.devices)
        db.configure(Settings(database_url=url))
        quiet_sweep_s, rested_s = quiet_sweep(url)
        with gunicorn(url, args.port) as base_url:
            wrk(base_url, "next", devices_file, 5, args.connections)  # warm-up
            quiet = wrk(base_url, "next", devices_file, args.duration, args.connections)
            sweep: dict = {}

            def run_sweep() -> None:
                time.sleep(1)  # let the load settle first
                started = time.monotonic()
                outcome = timeouts.time_out_overdue(datetime.now(UTC), Settings())
                sweep.update(seconds=time.monotonic() - started, rows=outcome.moved_rows)

            sweeper = threading.Thread(target=run_sweep)
            sweeper.start()
            busy = wrk(base_url, "next", devices_file, args.duration, args.connections)
            sweeper.join()
        with psycopg.connect(url) as conn:
            events = conn.execute("SELECT count(*) FROM job_events"
                                  " WHERE action = 'device_job.timed_out'").fetchone()[0]
        db.close()

    print(f"timeout sweep: {sweep['rows']} rows TIMED_OUT in {sweep['seconds']:.2f} s "
          f"({sweep['rows'] / sweep['seconds']:.0f} rows/s, chunks of "
          f"{timeouts.BATCH_SIZE}), {events} audit rows")
    print(f"floor: one bare UPDATE of {floor_rows} rows in {floor_s:.2f} s, no poll load; "
          f"the sweep with no poll load: {quiet_sweep_s:.2f} s "
          f"({quiet_sweep_s / floor_s:.1f}x the floor)")
    print(f"where the quiet sweep's time goes: the bare UPDATE {floor_s:.2f} s; its statement "
          f"over every row at once, with the audit rows and every column it records, "
          f"{one_statement_s:.2f} s ({one_statement_s / floor_s:.1f}x); in chunks of "
          f"{timeouts.BATCH_SIZE} {quiet_sweep_s - rested_s:.2f} s of work and {rested_s:.2f} s "
          f"of rests between them (REST_RATIO {REST_RATIO}, for the polls)")
    if sweep["seconds"] > args.duration - 1:
        print("note: the sweep outlasted the measured poll window; raise --duration")
    print(f"{'GET /jobs/next':<30}{'req/s':>10}{'p50 ms':>10}{'p99 ms':>10}{'errors':>9}")
    for label, run in (("without the sweep (floor)", quiet), ("while the sweep runs", busy)):
        print(f"{label:<30}{run['rps']:>10.0f}{run['p50_ms']:>10.2f}{run['p99_ms']:>10.2f}"
              f"{run['errors']:>9}")


if __name__ == "__main__":
    main()
