"""Fan-out benchmark: execute a job on a whole fleet and time it until its last row exists.

For each fleet size, in a fresh database, with the API under gunicorn and one Celery worker
(prefork, one child) as deployed, nudges off:

1. ``POST /api/v1/jobs/execute`` latency with no worker running (so nothing competes), for
   targets that each reach the whole fleet: ``all``, a device_type group, groups of one, two
   and three attributes and one with a nested object value. All are counted from the
   maintained device signatures; the fleet is registered in ``--racks`` batches that differ
   in one attribute, so it has that many signatures to sum.
2. Fan-out wall time from sending the execute request until the execution is marked DONE
   with every row in place (polled every 50 ms), while a small job is executed every half
   second to show the API is not blocked (its latency is printed too).
3. The floor, in the same run: one raw ``INSERT … SELECT`` of the same rows into a copy of
   ``device_job_status`` with identical indexes, CHECKs, foreign keys and the same per-status
   counting triggers ("floor"), and into a copy with the indexes only ("bare floor").
   Target: fan-out within 2x of the floor.

    .venv/bin/python tests/bench/bench_fanout.py [--sizes 100000 1000000] [--samples 20]
        [--racks 100]
"""

from __future__ import annotations

import argparse
import collections
import http.client
import json
import statistics
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import psycopg
from bench_support import bench_database, vacuum_analyze

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/: the process helpers

from job_rows import bulk_register_devices  # noqa: E402
from processes import ServerProcesses, purge_broker_keys  # noqa: E402

from dispatcher import db  # noqa: E402
from dispatcher.config import Settings  # noqa: E402

ADMIN_TOKEN = "bench-admin-token"
TARGET_RATIO = 2.0
EXECUTE_TARGET_MS = 50.0
DIAGNOSTIC = {
    "version": "1.0",
    "steps": [{"name": "Check disk space", "type": "runCommand", "input": {"command": "df,-h"}}],
}
FLEET_ATTRIBUTES = {"environment": "production", "site": "berlin",
                    "location": {"city": "berlin", "building": "b2"}}
# Every target reaches the whole fleet: the counts below are the worst case of each kind.
TARGETS = {
    "all": {"target_type": "all"},
    "group device_type": {"target_type": "group",
                          "target_filter": {"device_type": "raspberry-pi"}},
    "group one attribute": {"target_type": "group",
                            "target_filter": {"environment": "production"}},
    "group two attributes": {"target_type": "group",
                             "target_filter": {"environment": "production", "site": "berlin"}},
    "group three + type": {"target_type": "group", "target_filter": {
        "device_type": "raspberry-pi", "environment": "production", "site": "berlin",
        "location": {"city": "berlin"}}},
    "group nested attribute": {"target_type": "group",
                               "target_filter": {"location": {"city": "berlin"}}},
}
FLOOR_TABLES_SQL = """
CREATE TABLE fanout_floor (LIKE device_job_status INCLUDING ALL);
ALTER TABLE fanout_floor
    ADD FOREIGN KEY (job_id) REFERENCES job_executions (job_id) ON DELETE CASCADE,
    ADD FOREIGN KEY (device_uuid) REFERENCES devices (uuid) ON DELETE CASCADE;
CREATE TRIGGER fanout_floor_count_insert AFTER INSERT ON fanout_floor
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION job_status_counts_apply();
CREATE TABLE fanout_bare_floor (LIKE device_job_status INCLUDING ALL);
"""
FLOOR_INSERT_SQL = {
    "fanout_floor": "INSERT INTO fanout_floor (job_id, device_uuid)"
                    " SELECT %(job_id)s, uuid FROM devices ORDER BY uuid",
    "fanout_bare_floor": "INSERT INTO fanout_bare_floor (job_id, device_uuid)"
                         " SELECT %(job_id)s, uuid FROM devices ORDER BY uuid",
}


class Api:
    """One keep-alive HTTP connection to the API, with the admin token."""

    def __init__(self, url: str) -> None:
        host, port = url.removeprefix("http://").split(":")
        self.connection = http.client.HTTPConnection(host, int(port), timeout=60)

    def execute(self, body: dict) -> tuple[dict, float]:
        started = time.perf_counter()
        try:
            response = self._post(body)
        except (BrokenPipeError, ConnectionResetError, http.client.RemoteDisconnected):
            # The server closed the idle keep-alive connection (after its keepalive seconds,
            # while the database was being settled between phases): it never saw the request.
            self.connection.close()
            started = time.perf_counter()
            response = self._post(body)
        answer = json.loads(response.read())
        elapsed_ms = (time.perf_counter() - started) * 1000
        if response.status != 201:
            raise RuntimeError(f"execute answered {response.status}: {answer}")
        return answer, elapsed_ms

    def _post(self, body: dict) -> http.client.HTTPResponse:
        self.connection.request("POST", "/api/v1/jobs/execute", body=json.dumps(body), headers={
            "Authorization": f"Bearer {ADMIN_TOKEN}", "Content-Type": "application/json"})
        return self.connection.getresponse()


def execute_body(target: dict) -> dict:
    return {"job_name": "bench", "job_document": DIAGNOSTIC, **target}


def latency_summary(samples_ms: list[float]) -> str:
    ordered = sorted(samples_ms)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return (f"median {statistics.median(ordered):6.1f} ms  p95 {p95:6.1f} ms  "
            f"max {ordered[-1]:6.1f} ms  (n={len(ordered)})")


def forget_jobs(url: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("DELETE FROM job_executions")


def fanout_done(conn: psycopg.Connection, job_id: str) -> bool:
    return conn.execute("SELECT fanout_status = 'DONE' FROM job_executions WHERE job_id = %s",
                        (job_id,)).fetchone()[0]


def rows_of(url: str, job_id: str) -> int:
    with psycopg.connect(url) as conn:
        return conn.execute("SELECT count(*) FROM device_job_status WHERE job_id = %s",
                            (job_id,)).fetchone()[0]


def floor_seconds(url: str, table: str) -> float:
    with psycopg.connect(url, autocommit=True) as conn:
        job_id = uuid.uuid4()
        conn.execute("INSERT INTO job_executions (job_id, job_name, job_document, target_type,"
                     " fanout_status) VALUES (%s, 'floor', '{}', 'all', 'DONE')", (job_id,))
        started = time.perf_counter()
        conn.execute(FLOOR_INSERT_SQL[table], {"job_id": job_id})
        return time.perf_counter() - started


PROFILE_ROWS = 10_000
PROFILE_SQL = """
EXPLAIN (ANALYZE, FORMAT JSON)
INSERT INTO {table} (job_id, device_uuid, released_at)
SELECT %(job_id)s, uuid, now() FROM devices ORDER BY uuid LIMIT %(rows)s
ON CONFLICT DO NOTHING
"""


def chunk_profile(url: str, table: str) -> tuple[float, dict[str, float]]:
    """Where one chunk's time goes: a chunk's worth of rows inserted as the fan-out inserts
    them (ON CONFLICT DO NOTHING, released now) under EXPLAIN ANALYZE, rolled back: the
    statement's milliseconds and each trigger's (foreign-key checks, counters, notifications).
    """
    with psycopg.connect(url) as conn, conn.transaction(force_rollback=True):
        job_id = uuid.uuid4()
        conn.execute("INSERT INTO job_executions (job_id, job_name, job_document, target_type,"
                     " fanout_status) VALUES (%s, 'profile', '{}', 'all', 'DONE')", (job_id,))
        [[[plan]]] = conn.execute(PROFILE_SQL.format(table=table),
                                  {"job_id": job_id, "rows": PROFILE_ROWS}).fetchall()
    return plan["Execution Time"], {
        f"foreign key {t['Constraint Name']}" if "Constraint Name" in t else t["Trigger Name"]:
        t["Time"] for t in plan["Triggers"]}


def print_chunk_profile(url: str) -> None:
    bare_ms, _ = chunk_profile(url, "fanout_bare_floor")
    total_ms, triggers = chunk_profile(url, "device_job_status")
    print(f"one chunk of {PROFILE_ROWS:,} rows: {total_ms:.0f} ms in device_job_status "
          f"({total_ms / bare_ms:.2f}x the {bare_ms:.0f} ms of the same insert into the copy "
          f"with indexes only); its triggers:")
    for name, ms in sorted(triggers.items(), key=lambda item: -item[1]):
        print(f"  {name:<52} {ms:7.1f} ms")
    print(f"  {'the insert itself (the rest)':<52} {total_ms - sum(triggers.values()):7.1f} ms",
          flush=True)


def bench_size(devices: int, samples: int, racks: int, work_dir: Path) -> None:
    print(f"\n=== fleet of {devices:,} devices ===", flush=True)
    with bench_database(f"bench_fanout_{devices}") as url:
        settings = Settings(database_url=url, admin_token=ADMIN_TOKEN,
                            celery_key_prefix=f"bench-fanout-{uuid.uuid4().hex[:8]}:")
        db.configure(settings)
        started = time.perf_counter()
        for rack in range(racks):
            bulk_register_devices(devices // racks + (rack < devices % racks), "raspberry-pi",
                                  {**FLEET_ATTRIBUTES, "rack": rack})
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(FLOOR_TABLES_SQL)
        vacuum_analyze(url)
        print(f"fleet registered in {time.perf_counter() - started:.1f} s "
              f"({racks} device signatures)", flush=True)
        with ServerProcesses(work_dir / f"size-{devices}") as servers:
            api = Api(servers.start_api(settings, workers=2).url)
            api.execute(execute_body(TARGETS["all"]))  # warm up connections and pools
            for name, target in TARGETS.items():
                latencies = [api.execute(execute_body(target))[1] for _ in range(samples)]
                print(f"POST /jobs/execute {name:<22} {latency_summary(latencies)}",
                      flush=True)
            forget_jobs(url)
            purge_broker_keys(settings)
            vacuum_analyze(url)

            servers.start_worker(settings)
            small = execute_body({"target_type": "device", "target_devices": [
                _first_device(url)]})
            started = time.perf_counter()
            answer, _ = api.execute(execute_body(TARGETS["all"]))
            job_id = answer["job"]["job_id"]
            during, next_small = [], started + 0.5
            waits = WaitSampler(url)
            with waits, psycopg.connect(url, autocommit=True) as watcher:
                while not fanout_done(watcher, job_id):
                    if time.perf_counter() >= next_small:
                        during.append(api.execute(small)[1])
                        next_small += 0.5
                    time.sleep(0.05)
            fanout_s = time.perf_counter() - started
        assert rows_of(url, job_id) == devices
        print(f"POST /jobs/execute during the fan-out {latency_summary(during)}")
        waits.report()
        floor_s = floor_seconds(url, "fanout_floor")
        bare_s = floor_seconds(url, "fanout_bare_floor")
        ratio = fanout_s / floor_s
        print(f"fan-out, execute to last row  {fanout_s:7.2f} s  "
              f"({devices / fanout_s:,.0f} rows/s)")
        print(f"floor: one INSERT … SELECT    {floor_s:7.2f} s  "
              f"(same indexes, FKs and counting triggers)")
        print(f"bare floor: indexes only      {bare_s:7.2f} s")
        print(f"fan-out / floor = {ratio:.2f}x  (target <= {TARGET_RATIO}x: "
              f"{'met' if ratio <= TARGET_RATIO else 'NOT met'}); fan-out / bare floor = "
              f"{fanout_s / bare_s:.2f}x", flush=True)
        print_chunk_profile(url)
    db.close()


class WaitSampler:
    """What the database's backends wait on while the fan-out runs, sampled from
    ``pg_stat_activity`` every 10 ms: the fan-out's chunk statements apart from everything
    else (the executes), each sample its wait event or CPU, and how many backends stood in
    the WAL's way at once, which tells a commit queued behind a chunk's WAL from lock or CPU."""

    SAMPLE_SQL = """
        SELECT CASE WHEN query ILIKE '%%INSERT INTO device_job_status%%' THEN 'fan-out chunk'
                    ELSE 'other (executes)' END,
               coalesce(wait_event_type || ':' || wait_event, 'CPU')
          FROM pg_stat_activity
         WHERE datname = current_database() AND state = 'active' AND pid <> pg_backend_pid()
    """

    def __init__(self, url: str) -> None:
        self.url = url
        self.counts: collections.Counter = collections.Counter()
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> WaitSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        with psycopg.connect(self.url, autocommit=True) as conn:
            while not self._stop.wait(0.01):
                self.samples += 1
                self.counts.update(tuple(row) for row in conn.execute(self.SAMPLE_SQL))

    def report(self) -> None:
        print(f"what active backends waited on during the fan-out ({self.samples} samples):")
        for (who, wait), n in sorted(self.counts.items(), key=lambda item: -item[1])[:12]:
            print(f"  {who:<17} {wait:<28} {n:6d}  ({n / max(1, self.samples):.2f}/sample)")


def _first_device(url: str) -> str:
    with psycopg.connect(url) as conn:
        return str(conn.execute("SELECT uuid FROM devices LIMIT 1").fetchone()[0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--samples", type=int, default=20,
                        help="execute requests timed per target (default 20)")
    parser.add_argument("--racks", type=int, default=100,
                        help="registration batches, one rack value each (default 100)")
    args = parser.parse_args()
    print(f"target: POST /jobs/execute < {EXECUTE_TARGET_MS:.0f} ms at any size; "
          f"fan-out within {TARGET_RATIO}x of the floor")
    work_dir = Path(tempfile.mkdtemp(prefix="device-jobs-bench-fanout-"))
    for size in args.sizes:
        bench_size(size, args.samples, args.racks, work_dir)


if __name__ == "__main__":
    main()
