"""Soak: a simulated fleet for ten minutes on a whole stack of its own, with a fault every minute.

Thousands of simulated devices poll and report from threads (a few in twenty fail, so retries
have work), real ``jobs-agent`` processes run their jobs, a job is executed every few seconds
on a rack of devices, and now and then one is canceled or retried. Every minute one fault from
the chaos suite's list is injected, in turn: the broker restarted, PostgreSQL restarted, Mosquitto
restarted, the worker SIGKILLed and started again, the API SIGKILLed and started again, beat
stopped for twenty seconds. Printed per minute: requests, errors by code, p99 latency, API and
worker memory; at the end, lost and duplicated executions (both must be 0) and memory growth.

Runs on services of its own (``tests/private_services.py``), like the chaos tests, so it never
touches the machine's. By hand, never in the suite:

    .venv/bin/python tests/bench/soak.py [--minutes 10] [--devices 3000] [--broker rabbitmq]
"""

from __future__ import annotations

import argparse
import collections
import http.client
import json
import random
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import psycopg

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent), str(HERE.parent / "chaos")]
from bench_support import REGISTER_FLEET_SQL, device_token, device_uuid  # noqa: E402
from chaos_stack import ADMIN, FINAL, ChaosStack  # noqa: E402
from processes import wait_until  # noqa: E402

RACKS = 100  # REGISTER_FLEET_SQL puts device i in rack "r{i % 100}"
FAIL_ONE_IN = 20
AGENTS = 3


@dataclass
class Minute:
    requests: int = 0
    codes: collections.Counter = field(default_factory=collections.Counter)
    latencies: list[float] = field(default_factory=list)
    fault: str = ""
    api_mb: float = 0.0
    worker_mb: float = 0.0


class Recorder:
    def __init__(self) -> None:
        self.started = time.monotonic()
        self.minutes: dict[int, Minute] = collections.defaultdict(Minute)
        self.lock = threading.Lock()
        # (job, device, execution number) -> final reports the API accepted
        self.accepted: collections.Counter = collections.Counter()

    def minute(self) -> int:
        return int((time.monotonic() - self.started) // 60)

    def record(self, status: int | str, took_s: float) -> None:
        with self.lock:
            minute = self.minutes[self.minute()]
            minute.requests += 1
            minute.codes[status] += 1
            minute.latencies.append(took_s)


class SimulatedDevices(threading.Thread):
    """A slice of the fleet: each device polls every ``period_s``; a job it gets is reported
    at once (SUCCEEDED, or FAILED one time in twenty). A report that got no answer is sent
    again at the device's next turn, as the agent's outbox does."""

    def __init__(self, url: str, devices: list[int], period_s: float, recorder: Recorder,
                 stop: threading.Event) -> None:
        super().__init__(daemon=True)
        host, port = url.removeprefix("http://").split(":")
        self.address = (host, int(port))
        self.devices = devices
        self.period_s = period_s
        self.recorder = recorder
        self.stop_event = stop
        self.pending: dict[int, tuple[str, dict, int]] = {}
        self.rng = random.Random(devices[0])

    def request(self, method: str, path: str, token: str, body: dict | None = None):
        conn = http.client.HTTPConnection(*self.address, timeout=15)
        started = time.monotonic()
        try:
            conn.request(method, path, body=None if body is None else json.dumps(body),
                         headers={"Authorization": f"Bearer {token}",
                                  "Content-Type": "application/json"})
            response = conn.getresponse()
            raw = response.read()
            status: int | str = response.status
            answer = json.loads(raw) if raw else {}
        except Exception as exc:  # no answer: what the device saw
            status, answer = type(exc).__name__, {}
        finally:
            conn.close()
        self.recorder.record(status, time.monotonic() - started)
        return status, answer

    def run(self) -> None:
        gap = self.period_s / len(self.devices)
        while not self.stop_event.is_set():
            for i in self.devices:
                if self.stop_event.is_set():
                    return
                self.turn(i)
                time.sleep(gap)

    def turn(self, i: int) -> None:
        uuid, token = device_uuid(i), device_token(i)
        if i in self.pending:
            self.report(i, *self.pending[i])
            return
        status, answer = self.request("GET", f"/api/v1/devices/{uuid}/jobs/next", token)
        if status == 200 and answer.get("jobId"):
            failed = self.rng.randrange(FAIL_ONE_IN) == 0
            body = {"status": "FAILED" if failed else "SUCCEEDED", "exit_code": int(failed),
                    "executed_steps": 1, "expected_version": answer.get("versionNumber")}
            self.pending[i] = (answer["jobId"], body, answer.get("executionNumber", 1))
            self.report(i, *self.pending[i])

    def report(self, i: int, job_id: str, body: dict, execution_number: int) -> None:
        status, answer = self.request(
            "PATCH", f"/api/v1/devices/{device_uuid(i)}/jobs/{job_id}/status", device_token(i),
            {k: v for k, v in body.items() if v is not None})
        if status == 200:
            with self.recorder.lock:
                self.recorder.accepted[(job_id, i, execution_number)] += 1
        if isinstance(status, int) and status != 503 and status < 500:
            del self.pending[i]  # answered (200, or 409: the job ended meanwhile)


def process_mb(leader_pid: int | None) -> float:
    """Resident memory of a process and everything in its process group, in MB."""
    if leader_pid is None:
        return 0.0
    total_kb = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[2]) != leader_pid:  # pgrp
                continue
            status = (stat.parent / "status").read_text()
        except (OSError, IndexError, ValueError):
            continue
        for line in status.splitlines():
            if line.startswith("VmRSS:"):
                total_kb += int(line.split()[1])
    return total_kb / 1024


class Soak:
    def __init__(self, args: argparse.Namespace, root: Path) -> None:
        self.args = args
        self.stack = ChaosStack(root, broker=args.broker, fanout_chunk_size=500)
        self.recorder = Recorder()
        self.stop = threading.Event()
        self.jobs: list[str] = []
        self.faults: list[tuple[str, float]] = []

    def start(self) -> None:
        stack = self.stack
        with psycopg.connect(stack.database_url) as conn:
            conn.execute(REGISTER_FLEET_SQL, {"devices": self.args.devices})
        self.worker = stack.start_worker()
        self.beat = stack.start_beat()
        stack.start_api(workers=2, threads=8)
        for n in range(AGENTS):
            device = stack.register(f"agent-{n}", "soak-agent")
            stack.start_agent(device, poll_interval_s=5, mqtt=True)
        per_thread = max(1, self.args.devices // self.args.threads)
        for start in range(1, self.args.devices + 1, per_thread):
            devices = list(range(start, min(start + per_thread, self.args.devices + 1)))
            SimulatedDevices(stack.api.url, devices, self.args.poll_period_s, self.recorder,
                             self.stop).start()

    def fault(self, n: int) -> str:
        stack = self.stack
        kind = ["broker restarted", "postgresql restarted", "mosquitto restarted",
                "worker sigkilled", "api sigkilled", "beat stopped 20 s"][n % 6]
        started = time.monotonic()
        if kind == "broker restarted":
            stack.broker_service.restart(down_s=4)
        elif kind == "postgresql restarted":
            stack.postgres.restart(down_s=5)
        elif kind == "mosquitto restarted":
            stack.mosquitto.restart(down_s=4)
        elif kind == "worker sigkilled":
            self.worker.kill()
            self.worker = stack.start_worker()
        elif kind == "api sigkilled":
            stack.api.kill()
            time.sleep(2)
            stack.restart_api()
        else:
            self.beat.stop()
            time.sleep(20)
            self.beat = stack.start_beat()
        self.faults.append((kind, time.monotonic() - started))
        return kind

    def operate(self, until: float) -> None:
        """Execute a job on a rack every few seconds; cancel or retry one now and then."""
        rng = random.Random(7)
        next_fault = self.recorder.started + 30
        fault_n = 0
        while time.monotonic() < until:
            if time.monotonic() >= next_fault:
                minute = self.recorder.minute()
                self.recorder.minutes[minute].fault = self.fault(fault_n)
                fault_n += 1
                next_fault += 60
            target = ({"target_type": "group", "target_filter": {"device_type": "soak-agent"}}
                      if rng.random() < 0.1 else
                      {"target_type": "group",
                       "target_filter": {"rack": f"r{rng.randrange(RACKS)}"}})
            self.call("POST", "/jobs/execute", {
                "job_name": "soak", "job_document": {"version": "1.0", "steps": [
                    {"name": "Check", "type": "runCommand", "input": {"command": "true"}}]},
                **target}, keep=True)
            if self.jobs and rng.random() < 0.1:
                self.call("POST", f"/jobs/executions/{rng.choice(self.jobs)}/cancel", {})
            if self.jobs and rng.random() < 0.1:
                self.call("POST", f"/jobs/executions/{rng.choice(self.jobs)}/retry", None)
            self.sample_memory()
            time.sleep(self.args.execute_every_s)

    def call(self, method: str, path: str, body: object, keep: bool = False) -> None:
        try:
            status, answer = self.stack.http.request(method, f"/api/v1{path}", body, ADMIN)
        except OSError:
            self.stack.http = type(self.stack.http)(self.stack.api.url, timeout_s=30)
            return
        if keep and status == 201:
            self.jobs.append(answer["job"]["job_id"])

    def sample_memory(self) -> None:
        minute = self.recorder.minutes[self.recorder.minute()]
        minute.api_mb = max(minute.api_mb, process_mb(self.stack.api.pid))
        minute.worker_mb = max(minute.worker_mb, process_mb(self.worker.pid))

    def drain(self) -> None:
        """Stop executing; wait until every job has ended (the fleet keeps polling)."""
        def open_rows() -> int:
            return self.stack.sql(
                "SELECT count(*) AS n FROM device_job_status WHERE is_latest"
                " AND status NOT IN ('SUCCEEDED','FAILED','TIMED_OUT','REJECTED','CANCELED',"
                "'REMOVED')")[0]["n"]
        wait_until(lambda: open_rows() == 0, 300, "every execution to end", interval_s=2)
        wait_until(lambda: not self.stack.sql(
            "SELECT 1 FROM job_executions WHERE fanout_status <> 'DONE'"), 120, "fan-outs")

    def verdict(self) -> dict:
        stack = self.stack
        executed = len(stack.sql("SELECT job_id FROM job_executions"))
        lost = stack.sql(
            "SELECT count(*) AS n FROM job_executions e WHERE e.fanout_status <> 'DONE'"
            " OR e.total_devices <> (SELECT count(DISTINCT device_uuid) FROM device_job_status s"
            "   WHERE s.job_id = e.job_id)")[0]["n"]
        doubled_rows = stack.sql(
            "SELECT count(*) AS n FROM (SELECT job_id, device_uuid, execution_number"
            " FROM device_job_status GROUP BY 1, 2, 3 HAVING count(*) > 1) d")[0]["n"]
        # A device's final reports on a job: at most one per execution (retries add one).
        doubled_reports = stack.sql(
            "SELECT count(*) AS n FROM (SELECT job_id, device_uuid, count(*) AS finals"
            "   FROM job_events WHERE action = 'device_job.status_changed'"
            "    AND actor LIKE 'device%%' AND details->>'to' = ANY(%s) GROUP BY 1, 2) f"
            " JOIN (SELECT job_id, device_uuid, count(*) AS executions FROM device_job_status"
            "   GROUP BY 1, 2) r USING (job_id, device_uuid) WHERE f.finals > r.executions",
            list(FINAL))[0]["n"]
        client_doubled = sum(1 for n in self.recorder.accepted.values() if n > 1)
        return {"executions": executed, "lost": lost,
                "duplicated": doubled_rows + doubled_reports + client_doubled}

    def close(self) -> None:
        self.stop.set()
        self.stack.close()


def p99(values: list[float]) -> float:
    return sorted(values)[int(len(values) * 0.99) - 1] * 1000 if values else 0.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10)
    parser.add_argument("--devices", type=int, default=3000)
    parser.add_argument("--threads", type=int, default=16, help="threads simulating the fleet")
    parser.add_argument("--poll-period-s", type=float, default=15,
                        help="each simulated device polls this often")
    parser.add_argument("--execute-every-s", type=float, default=3)
    parser.add_argument("--broker", choices=["redis", "rabbitmq"], default="redis")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="device-jobs-soak-"))
    soak = Soak(args, root)
    try:
        soak.start()
        soak.operate(time.monotonic() + args.minutes * 60)
        soak.drain()
        verdict = soak.verdict()
    finally:
        soak.close()
    print(f"soak: {args.minutes:g} min, {args.devices} simulated devices + {AGENTS} agents, "
          f"broker {args.broker}, logs in {root}")
    print(f"{'min':>3}  {'fault':<22}{'requests':>9}  {'p99 ms':>7}  {'API MB':>7}  "
          f"{'worker MB':>9}  errors")
    minutes = soak.recorder.minutes
    for n in sorted(minutes):
        m = minutes[n]
        errors = {k: v for k, v in m.codes.items() if k not in (200, 201, 204)}
        print(f"{n:>3}  {m.fault:<22}{m.requests:>9}  {p99(m.latencies):>7.1f}  "
              f"{m.api_mb:>7.0f}  {m.worker_mb:>9.0f}  {errors or '-'}")
    sampled = [m for _, m in sorted(minutes.items()) if m.api_mb]
    if len(sampled) >= 2:
        print(f"memory growth first->last minute: API {sampled[0].api_mb:.0f} -> "
              f"{sampled[-1].api_mb:.0f} MB, worker {sampled[0].worker_mb:.0f} -> "
              f"{sampled[-1].worker_mb:.0f} MB")
    print("faults (time to inject and come back): "
          + ", ".join(f"{kind} {took:.1f}s" for kind, took in soak.faults))
    print(f"executions {verdict['executions']}, lost {verdict['lost']}, "
          f"duplicated {verdict['duplicated']}")
    return 0 if verdict["lost"] == verdict["duplicated"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
