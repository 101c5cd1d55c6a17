"""Agent benchmark: how fast a job reaches a device, and what the agent costs while it waits.

Two real ``jobs-agent`` processes against the API under gunicorn, a Celery worker and the
local Mosquitto: one with MQTT nudges (polling every 300 s), one polling only. For each, N jobs
one after the other: the time from execute to the agent's start of the job (the device row's
``started_at`` minus the execution's ``queued_at``, both PostgreSQL clocks), p50 and p95,
split into the server's part (execute to row created: API, broker, fan-out worker) and the
agent's part (row created to started). The floor is MQTT publish-to-receive between two
clients of the same broker, measured in the same run. Then the agents' resident memory idle
and while running a job, and their CPU time over an idle minute.

    .venv/bin/python tests/bench/bench_agent.py [--jobs 50] [--poll-interval-s 5] [--idle-s 60]
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import paho.mqtt.client as mqtt
import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/: the process helpers

from agent_processes import start_agent  # noqa: E402
from bench_support import ADMIN_TOKEN, bench_database  # noqa: E402
from json_http import JsonHttp  # noqa: E402
from processes import ServerProcess, ServerProcesses, purge_broker_keys  # noqa: E402

from dispatcher.config import Settings  # noqa: E402

MQTT_URL = "mqtt://127.0.0.1:1883"
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
CLOCK_TICKS_PER_S = os.sysconf("SC_CLK_TCK")
QUICK_JOB = {"version": "1.0", "steps": [{"name": "Ok", "type": "runCommand",
                                          "input": {"command": "true"}}]}
DELAYS_SQL = """
SELECT s.status, extract(epoch FROM s.started_at - e.queued_at) AS total_s,
       extract(epoch FROM s.queued_at - e.queued_at) AS server_s,
       extract(epoch FROM s.started_at - s.queued_at) AS agent_s
  FROM device_job_status s JOIN job_executions e USING (job_id) WHERE s.job_id = %s
"""


def percentiles(values: list[float]) -> str:
    ordered = sorted(values)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return f"p50 {statistics.median(ordered) * 1000:7.1f} ms   p95 {p95 * 1000:7.1f} ms"


def mqtt_publish_to_receive_s(samples: int) -> list[float]:
    """One publisher, one subscriber, QoS 1, one message in flight at a time."""
    topic = f"bench/floor/{uuid.uuid4()}"
    received = threading.Event()
    sent_at = [0.0]
    latencies: list[float] = []

    def on_message(client, userdata, message) -> None:
        latencies.append(time.perf_counter() - sent_at[0])
        received.set()

    subscribed = threading.Event()
    subscriber = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    subscriber.on_message = on_message
    subscriber.on_subscribe = lambda *args: subscribed.set()
    publisher = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    for client in (subscriber, publisher):
        client.connect("127.0.0.1", 1883)
        client.loop_start()
    subscriber.subscribe(topic, qos=1)
    subscribed.wait(5)
    try:
        for _ in range(samples):
            received.clear()
            sent_at[0] = time.perf_counter()
            publisher.publish(topic, b'{"jobId": "x", "event": "queued"}', qos=1)
            if not received.wait(5):
                raise RuntimeError("an MQTT message was not received within 5 s")
            time.sleep(0.02)
    finally:
        for client in (subscriber, publisher):
            client.loop_stop()
            client.disconnect()
    return latencies


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for {pid}")


def cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS_PER_S  # utime + stime


class Bench:
    def __init__(self, settings: Settings, servers: ServerProcesses, home: Path) -> None:
        self.settings = settings
        self.servers = servers
        self.home = home
        servers.start_worker(settings)
        self.api = servers.start_api(settings)
        self.http = JsonHttp(self.api.url)
        self.db = psycopg.connect(settings.database_url, autocommit=True,
                                  row_factory=psycopg.rows.dict_row)

    def call(self, method: str, path: str, body: object, expect: int) -> dict:
        status, answer = self.http.request(method, f"/api/v1{path}", body, ADMIN)
        if status != expect:
            raise RuntimeError(f"{method} {path}: {status} {answer}")
        return answer

    def agent(self, name: str, poll_interval_s: float, mqtt_url: str) -> tuple[dict, ServerProcess]:
        device = self.call("POST", "/devices", {"device_name": name}, 201)
        process = start_agent(self.servers, self.api.url, device, self.home / name,
                              poll_interval_s, mqtt_url, log_level="DEBUG")
        return device, process

    def execute(self, device: dict, document: dict) -> str:
        answer = self.call("POST", "/jobs/execute", {
            "job_name": "bench", "job_document": document, "target_type": "device",
            "target_devices": [str(device["uuid"])]}, 201)
        return answer["job"]["job_id"]

    def wait_for(self, job_id: str, statuses: tuple[str, ...], timeout_s: float) -> dict:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            row = self.db.execute(DELAYS_SQL, (job_id,)).fetchone()
            if row and row["status"] in statuses:
                return row
            time.sleep(0.01)
        raise RuntimeError(f"job {job_id} not {statuses} after {timeout_s} s")

    def time_to_start(self, device: dict, jobs: int, spread_s: float,
                      timeout_s: float) -> list[dict]:
        """Execute ``jobs`` quick jobs one at a time, each after a random pause in
        [0, spread_s) so they land at random points of the agent's poll cycle."""
        rows = []
        for _ in range(jobs):
            time.sleep(random.uniform(0, spread_s))
            job_id = self.execute(device, QUICK_JOB)
            rows.append(self.wait_for(job_id, ("SUCCEEDED", "FAILED"), timeout_s))
        return rows


def report_latencies(label: str, rows: list[dict]) -> None:
    print(f"  execute -> start, {label:<28} {percentiles([float(r['total_s']) for r in rows])}")
    print(f"      of which server (API, broker, fan-out)  "
          f"{percentiles([float(r['server_s']) for r in rows])}")
    print(f"      of which agent (row created -> start)   "
          f"{percentiles([float(r['agent_s']) for r in rows])}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=50)
    parser.add_argument("--poll-interval-s", type=float, default=5.0,
                        help="the polling-only agent's interval")
    parser.add_argument("--idle-s", type=float, default=60.0)
    args = parser.parse_args()
    with bench_database("djbench_agent") as url, \
            tempfile.TemporaryDirectory(prefix="bench-agent-") as tmp:
        settings = Settings(database_url=url, celery_key_prefix=f"djbench{os.getpid()}:",
                            admin_token=ADMIN_TOKEN, mqtt_url=MQTT_URL, poll_after_s=1)
        with ServerProcesses(Path(tmp) / "processes") as servers:
            try:
                run(args, Bench(settings, servers, Path(tmp)))
            except BaseException:
                for process in servers.started:
                    print(f"--- {process.name}: last lines of its log", file=sys.stderr)
                    print("\n".join(process.log_text().splitlines()[-40:]), file=sys.stderr)
                raise
            finally:
                purge_broker_keys(settings)


def run(args: argparse.Namespace, bench: Bench) -> None:
    nudged, nudged_agent = bench.agent("mqtt-pi", 300, MQTT_URL)
    polled, polled_agent = bench.agent("poll-pi", args.poll_interval_s, "")
    print(f"agent benchmark: {args.jobs} jobs per mode, API under gunicorn, 1 Celery worker, "
          f"Mosquitto, {os.cpu_count()} cores")

    floor = mqtt_publish_to_receive_s(args.jobs)
    print(f"  floor: MQTT publish -> receive (QoS 1)     {percentiles(floor)}")
    report_latencies("MQTT nudge (poll 300 s)", bench.time_to_start(nudged, args.jobs, 1.0, 30))
    report_latencies(f"polling only (every {args.poll_interval_s:g} s)",
                     bench.time_to_start(polled, args.jobs, args.poll_interval_s,
                                         args.poll_interval_s * 3 + 30))

    time.sleep(2)
    agents = {"MQTT agent": nudged_agent.pid, "polling agent": polled_agent.pid}
    idle_rss = {name: rss_mib(pid) for name, pid in agents.items()}
    job_id = bench.execute(nudged, {"version": "1.0", "steps": [
        {"name": "Work", "type": "runCommand", "input": {"command": "sleep,3"}}]})
    bench.wait_for(job_id, ("IN_PROGRESS",), 30)
    samples = []
    while bench.db.execute(DELAYS_SQL, (job_id,)).fetchone()["status"] == "IN_PROGRESS":
        samples.append(rss_mib(nudged_agent.pid))
        time.sleep(0.1)
    busy_rss = max(samples)
    print("  agent resident memory (VmRSS)             "
          + ", ".join(f"{name} idle {rss:.1f} MiB" for name, rss in idle_rss.items())
          + f"; MQTT agent running a job {busy_rss:.1f} MiB")

    time.sleep(2)
    before = {name: cpu_s(pid) for name, pid in agents.items()}
    time.sleep(args.idle_s)
    used = {name: cpu_s(pid) - before[name] for name, pid in agents.items()}
    print(f"  agent CPU over {args.idle_s:g} s idle                  " + ", ".join(
        f"{name} {seconds * 1000:.0f} ms ({seconds / args.idle_s * 100:.3f} %)"
        for name, seconds in used.items()))


if __name__ == "__main__":
    main()
