"""Polling benchmark: ``GET /api/v1/devices/<uuid>/jobs/next`` for random devices of a
100,000-device fleet with 1,000,000 execution rows (most of them terminal), served by gunicorn
as deployed and loaded by wrk from its own process. The floor is the trivial ``/healthz`` on
the same server in the same run; the target is at least its requests/s (1.0x).

Before any request, the workers' memory is read with their idle devices not yet loaded (the
devices table held locked, their listeners waiting on it) and again once every listener has
loaded them: the difference over the devices is the bytes an API worker spends per device it
knows, printed next to the same maps built bare in this process. A worker killed while loading
(gunicorn's timeout) shows as a worker restarted.

    .venv/bin/python tests/bench/bench_poll.py [--devices 100000] [--jobs 10] [--duration 15]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import statistics
import time
import urllib.request
import uuid

import psycopg
from bench_support import (
    anonymous_memory_kib,
    bench_database,
    device_token,
    device_uuid,
    gunicorn,
    indexes_built_after_load,
    insert_job,
    register_fleet,
    require_wrk,
    temp_path,
    vacuum_analyze,
    worker_memory_by_pid,
    write_device_list,
    wrk,
)

from dispatcher.db import QUERIES
from dispatcher.poll import idle

TARGET_RATIO = 1.0
# The newest job is still running: every 10th device has it QUEUED, every 50th IN_PROGRESS;
# the older jobs are finished (a few devices failed them).
INSERT_ROWS_SQL = """
INSERT INTO device_job_status (job_id, device_uuid, status, queued_at, started_at, completed_at,
                               last_updated_at, exit_code, stdout, executed_steps, version_number)
SELECT %(job_id)s, md5('bench-device-' || i)::uuid, s.status,
       now() - make_interval(hours => %(age_h)s), now() - make_interval(hours => %(age_h)s),
       CASE WHEN s.status IN ('QUEUED', 'IN_PROGRESS') THEN NULL ELSE now() END, now(),
       CASE s.status WHEN 'SUCCEEDED' THEN 0 WHEN 'FAILED' THEN 1 END,
       CASE WHEN s.status IN ('SUCCEEDED', 'FAILED') THEN 'Filesystem  Size  Used' END,
       CASE WHEN s.status IN ('SUCCEEDED', 'FAILED') THEN 1 END,
       CASE WHEN s.status = 'QUEUED' THEN 1 ELSE 3 END
  FROM generate_series(1, %(devices)s) AS i,
       LATERAL (SELECT CASE WHEN %(running)s AND i %% 50 = 0 THEN 'IN_PROGRESS'
                            WHEN %(running)s AND i %% 10 = 0 THEN 'QUEUED'
                            WHEN i %% 97 = 0 THEN 'FAILED'
                            ELSE 'SUCCEEDED' END AS status) AS s
"""

# Held while the workers start: their listeners' loads wait on it with the maps still empty.
LOCK_DEVICES_SQL = "LOCK TABLE devices IN ACCESS EXCLUSIVE MODE"
# The workers' listeners: how many wait on a lock (their load), how many have loaded (committed
# the load's transaction, or checking their connection since).
LISTENERS_SQL = """
SELECT count(*) FILTER (WHERE wait_event_type = 'Lock') AS waiting,
       count(*) FILTER (WHERE state = 'idle' AND query IN ('COMMIT', %(alive)s)) AS loaded
  FROM pg_stat_activity
 WHERE datname = current_database() AND application_name = %(name)s
"""
LOAD_TIMEOUT_S = 600
LOAD_CHECK_S = 0.01


def build_fleet(url: str, devices: int, jobs: int) -> None:
    started = time.monotonic()
    with indexes_built_after_load(url, "devices", "device_job_status"):
        register_fleet(url, devices)
        for j in range(jobs):
            running = j == jobs - 1
            job_id = uuid.uuid5(uuid.NAMESPACE_URL, f"bench-job-{j}")
            insert_job(url, job_id, f"bench job {j}", "IN_PROGRESS" if running else "SUCCEEDED",
                       devices)
            with psycopg.connect(url, autocommit=True) as conn:
                conn.execute(INSERT_ROWS_SQL, {"job_id": job_id, "devices": devices,
                                               "running": running, "age_h": jobs - j})
    vacuum_analyze(url)
    with psycopg.connect(url) as conn:
        rows = conn.execute("SELECT count(*) FROM device_job_status").fetchone()[0]
    print(f"data: {devices} devices, {rows} execution rows in {time.monotonic() - started:.0f} s")


def load_idle_devices(url: str, base_url: str, lock: psycopg.Connection) -> dict:
    """Let the workers load their idle devices (``lock`` holds the devices table): their memory
    before and after (KiB by pid), and how long from the release until every one had loaded."""
    workers = int(os.environ.get("WEB_CONCURRENCY", (os.cpu_count() or 1) + 1))
    params = {"name": idle.LISTENER_NAME, "alive": QUERIES["idle_devices_listener_alive"]}
    with psycopg.connect(url, autocommit=True) as conn:
        def listeners(column: int) -> int:
            return conn.execute(LISTENERS_SQL, params).fetchone()[column]

        _wait_for(lambda: listeners(0) == workers, "every worker's listener at the lock")
        before = worker_memory_by_pid(base_url)
        lock.rollback()
        started = time.monotonic()
        _wait_for(lambda: listeners(1) == workers, "every worker's idle devices loaded")
        loaded_s = time.monotonic() - started
        after = worker_memory_by_pid(base_url)
    return {"before": before, "after": after, "loaded_s": loaded_s}


def _wait_for(condition, what: str) -> None:
    deadline = time.monotonic() + LOAD_TIMEOUT_S
    while not condition():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        time.sleep(LOAD_CHECK_S)


def bare_maps_bytes_per_device(devices: int) -> float:
    """The floor of the workers' figure: the maps a worker keeps (dispatcher.poll.idle: 16-byte
    device keys to 32-byte token hashes, the idle devices apart), built bare in this process."""
    before = anonymous_memory_kib(os.getpid())
    idle_map: dict[bytes, bytes] = {}
    busy_map: dict[bytes, bytes] = {}
    for i in range(1, devices + 1):
        key = hashlib.md5(b"%d" % i).digest()
        (busy_map if i % 10 == 0 else idle_map)[key] = hashlib.sha256(key).digest()
    grown_kib = anonymous_memory_kib(os.getpid()) - before
    del idle_map, busy_map
    return grown_kib * 1024 / devices


def check_answers(base_url: str) -> None:
    """The server answers a pending job for device 10 and none for device 1."""
    for i, expect_job in ((10, True), (1, False)):
        request = urllib.request.Request(
            f"{base_url}/api/v1/devices/{device_uuid(i)}/jobs/next",
            headers={"Authorization": f"Bearer {device_token(i)}"},
        )
        with urllib.request.urlopen(request) as response:
            body = response.read().decode()
        assert ("jobId" in body) is expect_job, body


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=100_000)
    parser.add_argument("--jobs", type=int, default=10)
    parser.add_argument("--duration", type=int, default=15, help="seconds per measured run")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--port", type=int, default=18431)
    args = parser.parse_args()
    require_wrk()

    devices_file = temp_path("devices.txt")
    write_device_list(args.devices, devices_file)
    with bench_database("djbench_poll") as url:
        build_fleet(url, args.devices, args.jobs)
        lock = psycopg.connect(url)
        lock.execute(LOCK_DEVICES_SQL)
        with lock, gunicorn(url, args.port) as base_url:
            load = load_idle_devices(url, base_url, lock)
            check_answers(base_url)
            for kind in ("healthz", "next"):  # warm-up: imports, pools, caches
                wrk(base_url, kind, devices_file, 5, args.connections)
            results: dict[str, list[dict]] = {"healthz": [], "next": []}
            for _ in range(args.rounds):
                for kind in results:
                    results[kind].append(
                        wrk(base_url, kind, devices_file, args.duration, args.connections)
                    )
            memory_kib = worker_memory_by_pid(base_url)
    restarted = len(set(load["before"]) - set(memory_kib))
    print(f"idle devices loaded by {len(load['before'])} workers {load['loaded_s']:.2f} s after "
          f"the devices table was released; workers restarted since: {restarted}")
    per_device = [(load["after"][pid] - kib) * 1024 / args.devices
                  for pid, kib in load["before"].items() if pid in load["after"]]
    bare = bare_maps_bytes_per_device(args.devices)
    print(f"API workers' anonymous memory before the load {list(load['before'].values())} KiB, "
          f"after {list(load['after'].values())} KiB, after the runs "
          f"{list(memory_kib.values())} KiB")
    print(f"bytes per idle device (RssAnon after load - before, / {args.devices} devices): "
          f"{' '.join(f'{b:.0f}' for b in per_device)}, mean {statistics.mean(per_device):.0f}; "
          f"floor (the same maps bare in one process) {bare:.0f}; "
          f"ratio {statistics.mean(per_device) / bare:.2f} (no target set)")
    print(f"{'endpoint':<28}{'req/s':>10}{'p50 ms':>10}{'p99 ms':>10}{'errors':>9}")
    for kind, label in (("healthz", "GET /healthz (floor)"), ("next", "GET /jobs/next")):
        for run in results[kind]:
            print(f"{label:<28}{run['rps']:>10.0f}{run['p50_ms']:>10.2f}{run['p99_ms']:>10.2f}"
                  f"{run['errors']:>9}")
    floor = statistics.mean(r["rps"] for r in results["healthz"])
    poll = statistics.mean(r["rps"] for r in results["next"])
    ratio = poll / floor
    verdict = "meets" if ratio >= TARGET_RATIO else "BELOW"
    print(f"poll/healthz = {ratio:.2f} ({verdict} the {TARGET_RATIO}x target); "
          f"at 100,000 devices polling every 30 s the fleet needs {100_000 / 30:.0f} req/s")


if __name__ == "__main__":
    main()
