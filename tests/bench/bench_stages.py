"""Staged rollout benchmark: releasing a stage of 100,000 devices, deciding its gate, and a
device report's latency while a stage is being released.

In a fresh database with a fleet made in SQL, two jobs are executed with the stages
``[{"name": "canary", "count": 1}, {"name": "rest"}]`` and fanned out (the rest: 100,000 rows
each, held back). Then, in the same run:

1. Release: the second stage of the first job released as the release worker does it
   (``release_stage_rows``: one UPDATE per chunk of ``FANOUT_CHUNK_SIZE`` rows), next to the
   floor, a bare ``UPDATE device_job_status SET released_at = now()`` of the same rows in one
   statement (same table, same indexes and triggers). The rows are held back again, and the
   table vacuumed, before each run. Target: release within 1.5x the bare UPDATE.
2. Gate decision: ``evaluate_gate`` on that released stage of 100,000 devices (a read of its
   counter shards and the verdict), repeated. Target: under 5 ms.
3. Report latency: devices of the released stage report SUCCEEDED to the API under gunicorn
   (each terminal report of a staged device also decides its gate), first alone, then while
   the second job's stage of 100,000 devices is being released.

    .venv/bin/python tests/bench/bench_stages.py [--devices 100000] [--reports 2000]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import psycopg
from bench_support import (
    ADMIN_TOKEN,
    bench_database,
    device_token,
    device_uuid,
    gunicorn,
    register_fleet,
    vacuum_analyze,
)

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/: the HTTP client
from job_rows import fan_out, release  # noqa: E402
from json_http import JsonHttp  # noqa: E402

from dispatcher import db  # noqa: E402
from dispatcher.config import Settings  # noqa: E402
from dispatcher.jobs.create import create_execution  # noqa: E402
from dispatcher.policies import gates, stages  # noqa: E402
from dispatcher.sender import deliver

RELEASE_TARGET_RATIO = 1.5
GATE_TARGET_MS = 5.0
STAGES = [{"name": "canary", "count": 1}, {"name": "rest"}]
DOCUMENT = {"version": "1.0", "steps": [
    {"name": "Check disk space", "type": "runCommand", "input": {"command": "df,-h"}}]}
HOLD_BACK_SQL = """
UPDATE device_job_status SET released_at = NULL WHERE job_id = %(job_id)s AND stage = 1;
UPDATE job_stages SET rows_released_at = NULL WHERE job_id = %(job_id)s AND stage = 1;
"""
BARE_UPDATE_SQL = ("UPDATE device_job_status SET released_at = now()"
                   " WHERE job_id = %(job_id)s AND stage = 1")


def staged_job(settings: Settings) -> uuid.UUID:
    body = {"job_name": "bench stages", "job_document": DOCUMENT, "target_type": "all",
            "stages": STAGES}
    job = deliver(create_execution(body, "admin:bench", settings), settings)
    fan_out(job["job_id"], settings)
    return job["job_id"]


def mark_released(job_id: uuid.UUID) -> None:
    with db.transaction() as c:
        stages.mark_stage_released(c, job_id, 1, rows_released=False)


def hold_back(url: str, job_id: uuid.UUID) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        for statement in HOLD_BACK_SQL.strip().split(";\n"):
            conn.execute(statement, {"job_id": job_id})
        conn.execute("VACUUM ANALYZE device_job_status")
        conn.execute("CHECKPOINT")


def time_release(settings: Settings, job_id: uuid.UUID) -> tuple[float, int]:
    started = time.perf_counter()
    released = release(job_id, 1, settings)
    return time.perf_counter() - started, released


def time_bare_update(url: str, job_id: uuid.UUID) -> tuple[float, int]:
    with psycopg.connect(url, autocommit=True) as conn:
        started = time.perf_counter()
        rows = conn.execute(BARE_UPDATE_SQL, {"job_id": job_id}).rowcount
        return time.perf_counter() - started, rows


def gate_decision_ms(job_id: uuid.UUID, samples: int) -> list[float]:
    timings = []
    for _ in range(samples):
        started = time.perf_counter()
        gates.evaluate_gate(job_id, datetime.now(UTC))
        timings.append((time.perf_counter() - started) * 1000)
    return timings


def summary(samples_ms: list[float]) -> str:
    ordered = sorted(samples_ms)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return (f"median {statistics.median(ordered):6.2f} ms  p95 {p95:6.2f} ms  "
            f"max {ordered[-1]:6.2f} ms  (n={len(ordered)})")


def report_latencies(base_url: str, job_id: uuid.UUID, numbers: list[int],
                     threads: int) -> list[float]:
    """Each device of ``numbers`` reports SUCCEEDED once; answers each report's latency."""
    def run(chunk: list[int]) -> list[float]:
        timings = []
        with JsonHttp(base_url) as http:
            for i in chunk:
                started = time.perf_counter()
                status, answer = http.request(
                    "PATCH", f"/api/v1/devices/{device_uuid(i)}/jobs/{job_id}/status",
                    {"status": "SUCCEEDED", "exit_code": 0},
                    {"Authorization": f"Bearer {device_token(i)}"})
                timings.append((time.perf_counter() - started) * 1000)
                if status != 200:
                    raise RuntimeError(f"report answered {status}: {answer}")
        return timings

    with ThreadPoolExecutor(max_workers=threads) as pool:
        return [t for timings in pool.map(run, [numbers[k::threads] for k in range(threads)])
                for t in timings]


def stage_devices(url: str, job_id: uuid.UUID, devices: int) -> list[int]:
    """The bench device numbers in the job's second stage (every one but the canary)."""
    with psycopg.connect(url) as conn:
        canary = conn.execute("SELECT device_uuid FROM device_job_status WHERE job_id = %s"
                              " AND stage = 0", (job_id,)).fetchone()[0]
    return [i for i in range(1, devices + 1) if device_uuid(i) != canary]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=100_000)
    parser.add_argument("--gate-samples", type=int, default=300)
    parser.add_argument("--reports", type=int, default=2_000)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--port", type=int, default=18532)
    args = parser.parse_args()

    with bench_database("djbench_stages") as url:
        settings = Settings(database_url=url, admin_token=ADMIN_TOKEN, mqtt_url="",
                            celery_broker_url="memory://")
        db.configure(settings)
        register_fleet(url, args.devices + 1)
        released_job, concurrent_job = staged_job(settings), staged_job(settings)
        stage_size = args.devices
        vacuum_analyze(url)
        print(f"\n=== a stage of {stage_size:,} devices ===", flush=True)

        mark_released(released_job)
        release_runs, bare_runs = [], []
        for run in range(3):
            hold_back(url, released_job)
            seconds, rows = time_release(settings, released_job)
            assert rows == stage_size, rows
            release_runs.append(seconds)
            hold_back(url, released_job)
            seconds, rows = time_bare_update(url, released_job)
            assert rows == stage_size, rows
            bare_runs.append(seconds)
            print(f"run {run + 1}: release {release_runs[-1]:.3f} s, bare UPDATE "
                  f"{bare_runs[-1]:.3f} s", flush=True)
        release_s, bare_s = statistics.median(release_runs), statistics.median(bare_runs)
        ratio = release_s / bare_s
        verdict = "OK" if ratio <= RELEASE_TARGET_RATIO else "MISSED"
        print(f"release of {stage_size:,} rows in chunks of {settings.fanout_chunk_size:,}: "
              f"{release_s:.3f} s; bare UPDATE: {bare_s:.3f} s; ratio {ratio:.2f}x "
              f"(target <= {RELEASE_TARGET_RATIO}x) {verdict}", flush=True)

        gate_decision_ms(released_job, 20)  # warm-up
        timings = gate_decision_ms(released_job, args.gate_samples)
        median_ms = statistics.median(timings)
        verdict = "OK" if median_ms < GATE_TARGET_MS else "MISSED"
        print(f"gate decision on {stage_size:,} devices: {summary(timings)} "
              f"(target < {GATE_TARGET_MS} ms) {verdict}", flush=True)

        reporters = stage_devices(url, released_job, args.devices)
        alone, during = reporters[:args.reports], reporters[args.reports:2 * args.reports]
        with gunicorn(url, args.port, CELERY_BROKER_URL="memory://") as base_url:
            report_latencies(base_url, released_job, reporters[-200:], args.threads)  # warm-up
            quiet = report_latencies(base_url, released_job, alone, args.threads)
            print(f"report latency, nothing released meanwhile:  {summary(quiet)}", flush=True)
            mark_released(concurrent_job)
            releasing = threading.Thread(target=lambda: print(
                f"(the concurrent release took {time_release(settings, concurrent_job)[0]:.3f} s)"))
            started = time.perf_counter()
            releasing.start()
            busy = report_latencies(base_url, released_job, during, args.threads)
            reports_s = time.perf_counter() - started
            releasing.join()
            print(f"report latency while a stage of {stage_size:,} is released: {summary(busy)}"
                  f" ({len(during)} reports in {reports_s:.2f} s)", flush=True)


if __name__ == "__main__":
    main()
