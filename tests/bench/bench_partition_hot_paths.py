"""What monthly partitions of ``device_job_status`` would cost the hot paths, on the same data.

Retention drops a month of rows whole when the table is partitioned (bench_retention.py), but
the hot paths find rows by device or by job and device, never by month: a query on a
partitioned table that does not name the partition key probes one index per month. This
measures that cost on two copies of one database, the table plain in one and partitioned by
month of ``queued_at`` in the other (the same indexes, unique ones extended by the key, the
same triggers and foreign keys):

- a poll that reads PostgreSQL (``poll_device_job``, every device has a queued job);
- a status report (``reports.apply_report``: the ``report_device_jobs`` statement, one commit);
- a fan-out chunk (``fanout.fan_out_job``, ``fanout_insert_chunk`` of --chunk rows);

each as the p50, mean and p99 of sequential calls and the CPU time the server's processes spent
per call (read from /proc: robust to the shared machine's waits), next to the same block's
floor (``SELECT 1``), the two copies taking turns block by block, every figure measured --runs
times; and the shared buffers one poll and one report's row lookup touch (EXPLAIN ANALYZE).

    .venv/bin/python tests/bench/bench_partition_hot_paths.py [--devices 50000] [--months 7]
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import psycopg
from bench_retention import FINISHED_JOB_SQL, FINISHED_ROWS_SQL, LIVE_ROWS_SQL
from bench_support import bench_database, device_uuid, insert_job, register_fleet, vacuum_analyze

from dispatcher import db
from dispatcher.config import Settings
from dispatcher.jobs import fanout, reports

sys.path.insert(0, str(Path(__file__).parents[1]))
from private_postgres import PrivatePostgres  # noqa: E402

LIVE_JOB = uuid.uuid5(uuid.NAMESPACE_URL, "bench-hot-paths-live")

DEFINITIONS_SQL = """
SELECT 'index' AS kind, pg_get_indexdef(i.indexrelid) AS definition
  FROM pg_index i
 WHERE i.indrelid = 'device_job_status'::regclass
   AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid)
UNION ALL
SELECT 'constraint', format('ALTER TABLE device_job_status ADD CONSTRAINT %I %s', conname,
                            pg_get_constraintdef(oid))
  FROM pg_constraint
 WHERE conrelid = 'device_job_status'::regclass AND contype IN ('p', 'u', 'f')
UNION ALL
SELECT 'trigger', pg_get_triggerdef(oid)
  FROM pg_trigger WHERE tgrelid = 'device_job_status'::regclass AND NOT tgisinternal
"""


def build(url: str, devices: int, months: int) -> None:
    """The fleet, one finished job on every device every 30 days back to ``months`` months, and
    a live job queued on every device (so that each poll finds a job)."""
    started = time.monotonic()
    register_fleet(url, devices)
    for k in range(months):
        job_id = uuid.uuid5(uuid.NAMESPACE_URL, f"bench-hot-paths-{k}")
        insert_job(url, job_id, f"bench finished job {k}", "QUEUED", devices)
        with psycopg.connect(url, autocommit=True) as conn:
            params = {"job_id": job_id, "age": 30 * k + 3, "devices": devices}
            conn.execute(FINISHED_JOB_SQL, params)
            conn.execute(FINISHED_ROWS_SQL, params)
    insert_job(url, LIVE_JOB, "bench live job", "QUEUED", devices)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(LIVE_ROWS_SQL, {"job_id": LIVE_JOB, "devices": devices})
    print(f"data: {devices} devices, {devices * (months + 1)} device rows over {months} months,"
          f" built in {time.monotonic() - started:.0f} s")


def partition_device_rows(url: str) -> int:
    """Make ``device_job_status`` a table partitioned by month of ``queued_at``, with its rows,
    indexes (a unique one holds the key too), constraints and triggers; answer the months."""
    with psycopg.connect(url, autocommit=True) as conn, conn.transaction():
        definitions = conn.execute(DEFINITIONS_SQL).fetchall()
        conn.execute("ALTER TABLE device_job_status RENAME TO device_rows_plain")
        conn.execute("CREATE TABLE device_job_status (LIKE device_rows_plain INCLUDING DEFAULTS"
                     " INCLUDING CONSTRAINTS) PARTITION BY RANGE (queued_at)")
        conn.execute("ALTER SEQUENCE device_job_status_id_seq OWNED BY device_job_status.id")
        month_starts = [row[0] for row in conn.execute(
            "SELECT generate_series(date_trunc('month', min(queued_at)),"
            " date_trunc('month', now()) + interval '1 month', interval '1 month')"
            " FROM device_rows_plain").fetchall()]
        for start in month_starts:
            conn.execute(f"CREATE TABLE device_job_status_p{start:%Y%m} PARTITION OF"
                         f" device_job_status FOR VALUES FROM ('{start.isoformat()}') TO"
                         f" ('{start.isoformat()}'::timestamptz + interval '1 month')")
        conn.execute("INSERT INTO device_job_status SELECT * FROM device_rows_plain")
        conn.execute("DROP TABLE device_rows_plain")
        for kind, definition in definitions:
            if kind == "index" and " UNIQUE " in definition or kind == "constraint" and (
                    "PRIMARY KEY" in definition or " UNIQUE " in definition):
                definition = re.sub(r"\(([^()]*)\)", r"(\1, queued_at)", definition, count=1)
            conn.execute(definition)
    return len(month_starts)


CLOCK_TICKS_S = 1 / os.sysconf("SC_CLK_TCK")


def backends_cpu_s(url: str) -> dict[int, float]:
    """CPU time (user + system) of every server process connected to the database: what the
    statements cost the server, whatever the wait for the shared machine's cores."""
    name = psycopg.conninfo.conninfo_to_dict(url)["dbname"]
    with psycopg.connect(url, autocommit=True) as conn:
        pids = [row[0] for row in conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
            (name,)).fetchall()]
    spent = {}
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        spent[pid] = (int(fields[11]) + int(fields[12])) * CLOCK_TICKS_S
    return spent


def timed(url: str, calls: int, call: Callable[[int], object]) -> tuple[list[float], float]:
    """Each call's wall time, and the server's CPU time per call."""
    took = []
    before = backends_cpu_s(url)
    for i in range(calls):
        started = time.perf_counter()
        call(i)
        took.append(time.perf_counter() - started)
    after = backends_cpu_s(url)
    return took, sum(after[pid] - before.get(pid, 0.0) for pid in after) / calls


def buffers_per_call(url: str, query: str, params: dict) -> int:
    """Shared buffers one run of ``query`` touches (EXPLAIN ANALYZE, BUFFERS): the index pages
    it probes, one index per month when the table is partitioned."""
    with psycopg.connect(url, autocommit=True) as conn:
        plan = conn.execute("EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) " + db.QUERIES[query],
                            params).fetchone()[0][0]["Plan"]
    return plan.get("Shared Hit Blocks", 0) + plan.get("Shared Read Blocks", 0)


def poll(i: int, devices: int) -> None:
    db.row("poll_device_job", device_uuid=device_uuid(1 + (i * 7919) % devices), token_hash=None)


def report(i: int) -> None:
    reports.apply_report(device_uuid(i), LIVE_JOB, {"status": "IN_PROGRESS"}, 4096,
                         f"device:{device_uuid(i)}", None)


def fan_out(url: str, run: int, devices: int, chunk: int) -> tuple[list[float], float]:
    job_id = uuid.uuid5(uuid.NAMESPACE_URL, f"bench-hot-paths-fanout-{run}")
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("INSERT INTO job_executions (job_id, job_name, job_document, target_type,"
                     " total_devices, fanout_status) SELECT %s, 'bench fan-out', job_document,"
                     " 'all', %s, 'PENDING' FROM job_executions WHERE job_id = %s",
                     (job_id, devices, LIVE_JOB))
    took = []
    chunks = fanout.fan_out_job(job_id, chunk)
    before = backends_cpu_s(url)
    while True:
        started = time.perf_counter()
        if next(chunks, None) is None:
            after = backends_cpu_s(url)
            return took, sum(after[pid] - before.get(pid, 0.0) for pid in after) / len(took)
        took.append(time.perf_counter() - started)


def block(url: str, settings: Settings, run: int, args) -> dict[str, tuple[list[float], float]]:
    """Every figure once on one copy; run ``run`` reports the devices of its own slice."""
    db.configure(replace(settings, database_url=url))
    try:
        for i in range(200):  # warm the pool, the plans and the caches
            poll(i, args.devices)
        first = 1 + run * args.calls
        return {
            "floor (SELECT 1)": timed(url, args.calls, lambda i: db.row("ping")),
            "poll reading PostgreSQL": timed(url, args.calls, lambda i: poll(i, args.devices)),
            "status report": timed(url, args.calls, lambda i: report(first + i)),
            f"fan-out chunk ({args.chunk} rows)": fan_out(url, run, args.devices, args.chunk),
        }
    finally:
        db.close()


def buffers(url: str, devices: int) -> dict[str, int]:
    device = device_uuid(devices)  # reported by no run: its row is still QUEUED
    return {
        "poll reading PostgreSQL": buffers_per_call(
            url, "poll_device_job", {"device_uuid": device, "token_hash": None}),
        "status report (its row locked)": buffers_per_call(
            url, "lock_device_job", {"job_id": LIVE_JOB, "device_uuid": device}),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=50_000)
    parser.add_argument("--months", type=int, default=7,
                        help="months of finished jobs kept (RETENTION_DAYS 180: 7)")
    parser.add_argument("--calls", type=int, default=2_000, help="polls and reports per block")
    parser.add_argument("--chunk", type=int, default=1_000, help="fan-out chunk size")
    parser.add_argument("--runs", type=int, default=2)
    args = parser.parse_args()
    if args.calls * args.runs > args.devices:
        parser.error("each run reports devices of its own: --calls * --runs <= --devices")
    server = PrivatePostgres()
    server.start()
    try:
        run(server.url, args)
    finally:
        server.remove()


def run(admin_url: str, args) -> None:
    settings = Settings()
    with bench_database("djbench_hot_plain", admin_url) as plain:
        build(plain, args.devices, args.months)
        vacuum_analyze(plain)
        with bench_database("djbench_hot_parts", admin_url) as parts:
            with psycopg.connect(admin_url, autocommit=True) as conn:
                name = psycopg.conninfo.conninfo_to_dict(parts)["dbname"]
                conn.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
                source = psycopg.conninfo.conninfo_to_dict(plain)["dbname"]
                conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{source}"')
            months = partition_device_rows(parts)
            vacuum_analyze(parts)
            print(f"partitioned copy: {months} monthly partitions of device_job_status")
            touched = {"plain": buffers(plain, args.devices),
                       "partitioned": buffers(parts, args.devices)}
            results = []
            for k in range(args.runs):
                for label, url in (("plain", plain), ("partitioned", parts)):
                    results.append((k + 1, label, block(url, settings, k, args)))
    print(f"{'shared buffers one call touches':<45}{'plain':>8}{'partitioned':>13}")
    for statement in touched["plain"]:
        print(f"{statement:<45}{touched['plain'][statement]:>8}"
              f"{touched['partitioned'][statement]:>13}")
    print(f"{'run':<5}{'table':<13}{'statement':<28}{'calls':>7}{'p50 ms':>8}{'mean ms':>9}"
          f"{'p99 ms':>9}{'server CPU ms':>15}{'floor p50 ms':>14}{'floor CPU ms':>14}")
    for k, label, figures in results:
        floor_took, floor_cpu = figures["floor (SELECT 1)"]
        floor = statistics.median(floor_took) * 1000
        for statement, (took, cpu_s) in figures.items():
            ordered = sorted(took)
            p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000
            print(f"{k:<5}{label:<13}{statement:<28}{len(took):>7}"
                  f"{statistics.median(took) * 1000:>8.3f}{statistics.fmean(took) * 1000:>9.3f}"
                  f"{p99:>9.3f}{cpu_s * 1000:>15.3f}{floor:>14.3f}{floor_cpu * 1000:>14.3f}")


if __name__ == "__main__":
    main()
