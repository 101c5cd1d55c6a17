"""Report benchmark: 10,000 devices of one job report SUCCEEDED at the same time, to the API
served by gunicorn as deployed, from load processes of their own. Prints reports/s and checks
the final counters and job status are exact. Floors from the same run: the trivial /healthz
with the same load, and the same number of raw one-row UPDATE transactions in PostgreSQL.

    .venv/bin/python tests/bench/bench_reports.py [--devices 10000] [--concurrency 32]
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psycopg
from bench_support import (
    bench_database,
    cpu_seconds_by_role,
    device_token,
    device_uuid,
    gunicorn,
    insert_job,
    register_fleet,
    vacuum_analyze,
)

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from json_http import JsonHttp  # noqa: E402

LOAD_PROCESSES = 2
QUEUE_ROWS_SQL = """
INSERT INTO device_job_status (job_id, device_uuid)
SELECT %(job_id)s, md5('bench-device-' || i)::uuid FROM generate_series(1, %(devices)s) AS i
"""
RAW_UPDATE_SQL = """
UPDATE device_job_status SET status = 'SUCCEEDED', version_number = version_number + 1,
       started_at = now(), completed_at = now(), last_updated_at = now(), exit_code = 0
 WHERE job_id = %s AND device_uuid = %s AND is_latest
"""
COUNTS_SQL = """
SELECT status, sum(n)::bigint FROM job_status_counts WHERE job_id = %s
 GROUP BY status HAVING sum(n) <> 0
"""


def _load_slice(base_url: str, job_id: str, devices: list[int], threads: int,
                kind: str) -> list[int]:
    """One load process: ``threads`` keep-alive connections share ``devices``."""
    chunks = [devices[i::threads] for i in range(threads)]

    def run(chunk: list[int]) -> list[int]:
        codes = []
        with JsonHttp(base_url) as http:
            for i in chunk:
                if kind == "healthz":
                    codes.append(http.request("GET", "/healthz")[0])
                else:
                    path = f"/api/v1/devices/{device_uuid(i)}/jobs/{job_id}/status"
                    body = {"status": "SUCCEEDED", "exit_code": 0, "executed_steps": 1,
                            "stdout": "Filesystem  Size  Used"}
                    auth = {"Authorization": f"Bearer {device_token(i)}"}
                    codes.append(http.request("PATCH", path, body, auth)[0])
        return codes

    with ThreadPoolExecutor(max_workers=threads) as pool:
        return [code for codes in pool.map(run, chunks) for code in codes]


def http_load(base_url: str, job_id: uuid.UUID | None, devices: int, concurrency: int,
              kind: str) -> tuple[float, dict[int, int]]:
    """Every device once, spread over load processes; answers seconds and status counts."""
    numbers = list(range(1, devices + 1))
    slices = [numbers[p::LOAD_PROCESSES] for p in range(LOAD_PROCESSES)]
    threads = max(1, concurrency // LOAD_PROCESSES)
    context = multiprocessing.get_context("spawn")
    with context.Pool(LOAD_PROCESSES) as pool:
        started = time.monotonic()
        results = pool.starmap(
            _load_slice, [(base_url, str(job_id), s, threads, kind) for s in slices]
        )
        elapsed = time.monotonic() - started
    codes: dict[int, int] = {}
    for code in (c for result in results for c in result):
        codes[code] = codes.get(code, 0) + 1
    return elapsed, codes


def raw_updates(url: str, job_id: uuid.UUID, devices: int, concurrency: int) -> float:
    """The database floor: one committed single-row UPDATE per device, ``concurrency`` at once."""
    def run(numbers: list[int]) -> None:
        with psycopg.connect(url, autocommit=True) as conn:
            for i in numbers:
                conn.execute(RAW_UPDATE_SQL, (job_id, device_uuid(i)))

    numbers = list(range(1, devices + 1))
    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        list(pool.map(run, [numbers[i::concurrency] for i in range(concurrency)]))
    return time.monotonic() - started


def final_state(url: str, job_id: uuid.UUID) -> tuple[dict, dict, int]:
    with psycopg.connect(url) as conn:
        counts = dict(conn.execute(COUNTS_SQL, (job_id,)).fetchall())
        job = conn.execute(
            "SELECT status, succeeded_devices, failed_devices FROM job_executions"
            " WHERE job_id = %s", (job_id,),
        ).fetchone()
        completions = conn.execute(
            "SELECT count(*) FROM job_events WHERE job_id = %s AND action = 'job.completed'",
            (job_id,),
        ).fetchone()[0]
    return counts, {"status": job[0], "succeeded": job[1], "failed": job[2]}, completions


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=10_000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--port", type=int, default=18432)
    args = parser.parse_args()

    reported_job, raw_job = uuid.uuid4(), uuid.uuid4()
    n = args.devices
    with bench_database("djbench_reports") as url:
        register_fleet(url, args.devices)
        for job_id in (reported_job, raw_job):
            insert_job(url, job_id, "bench reports", "QUEUED", args.devices)
            with psycopg.connect(url, autocommit=True) as conn:
                conn.execute(QUEUE_ROWS_SQL, {"job_id": job_id, "devices": args.devices})
        vacuum_analyze(url)
        with gunicorn(url, args.port) as base_url:
            http_load(base_url, None, 500, args.concurrency, "healthz")  # warm-up
            before = cpu_seconds_by_role(base_url)
            healthz_s, healthz_codes = http_load(base_url, None, args.devices,
                                                 args.concurrency, "healthz")
            between = cpu_seconds_by_role(base_url)
            reports_s, report_codes = http_load(base_url, reported_job, args.devices,
                                                args.concurrency, "report")
            after = cpu_seconds_by_role(base_url)
        counts, job, completions = final_state(url, reported_job)
        raw_before = cpu_seconds_by_role()
        raw_s = raw_updates(url, raw_job, args.devices, args.concurrency)
        raw_ms = (cpu_seconds_by_role()["PostgreSQL"] - raw_before["PostgreSQL"]) * 1000 / n

    print(f"{n} devices, {args.concurrency} concurrent connections from {LOAD_PROCESSES} "
          "load processes")
    print(f"{'run':<44}{'seconds':>9}{'per second':>12}")
    print(f"{'PATCH .../status SUCCEEDED (each device once)':<44}{reports_s:>9.2f}"
          f"{n / reports_s:>12.0f}")
    print(f"{'floor: GET /healthz, same load':<44}{healthz_s:>9.2f}{n / healthz_s:>12.0f}")
    print(f"{'floor: raw one-row UPDATE transactions':<44}{raw_s:>9.2f}{n / raw_s:>12.0f}")
    print(f"CPU per request, ms (the machine has {os.cpu_count()} cores; load processes "
          "not counted):")
    for role in before:
        healthz_ms = (between[role] - before[role]) * 1000 / n
        report_ms = (after[role] - between[role]) * 1000 / n
        print(f"  {role:<12} healthz {healthz_ms:6.2f}   report {report_ms:6.2f}"
              + (f"   raw UPDATE {raw_ms:6.2f}" if role == "PostgreSQL" else ""))
    print(f"answers: reports {report_codes}, healthz {healthz_codes}")
    print(f"counters: {counts}; job: {job}; job.completed events: {completions}")
    exact = (counts == {"SUCCEEDED": n} and job == {"status": "SUCCEEDED", "succeeded": n,
                                                    "failed": 0}
             and completions == 1 and report_codes == {200: n})
    print("exact" if exact else "NOT EXACT")
    if not exact:
        sys.exit(1)


if __name__ == "__main__":
    main()
