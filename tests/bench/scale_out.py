"""Scale-out benchmark: each piece of the design run twice over on this one machine, on the
engines it would run on across hosts, every figure next to the same figure for one instance in
the same run.

- API: two gunicorn masters on two ports (as on two hosts) behind HAProxy, sharing one
  PostgreSQL: idle polls, polls that read PostgreSQL and IN_PROGRESS reports per second (wrk),
  and both processes' idle devices exact: a job executed through one is served by the other.
- Workers: one and two Celery workers on RabbitMQ fanning out one job, and two jobs, to the
  whole fleet: the time, and each device once.
- PgBouncer in transaction pooling between the API and PostgreSQL (DB_PREPARED_STATEMENTS=false
  for the distribution's 1.18, DIRECT_DATABASE_URL for LISTEN): the server connections it saves
  and the throughput it costs.
- MQTT: two Mosquitto brokers bridged: a nudge published on one reaches a device subscribed on
  the other; the latency next to the same broker's.

PostgreSQL is a server of the benchmark's own (``tests/private_postgres.py``), so connection
counts are the benchmark's. HAProxy, PgBouncer and RabbitMQ come from the distribution
(``deploy/scale-out-services.sh`` installs them when absent and starts RabbitMQ); the broker is
plain RabbitMQ in a virtual host of the run's own (classic queues: quorum queues need the
Celery settings the code does not have yet).

    .venv/bin/python tests/bench/scale_out.py [--devices 200000] [--duration 20]
"""

from __future__ import annotations

import argparse
import json
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from dataclasses import replace
from pathlib import Path

import paho.mqtt.client as mqtt
import psycopg
from bench_fanout import ADMIN_TOKEN, DIAGNOSTIC, Api
from bench_support import (
    bench_database,
    device_token,
    device_uuid,
    register_fleet,
    require_wrk,
    vacuum_analyze,
    write_device_list,
    wrk,
)

from dispatcher.config import Settings
from dispatcher.nudges import NudgePublisher
from dispatcher.sender import FAN_OUT_TASK
from workers.celery_app import build_celery_app

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/: the process helpers
from pgbouncer import PgBouncer  # noqa: E402
from private_postgres import PrivatePostgres  # noqa: E402
from processes import ServerProcesses, free_port, wait_until  # noqa: E402

PROJECT_DIR = Path(__file__).resolve().parents[2]
LIVE_JOB = uuid.uuid5(uuid.NAMESPACE_URL, "bench-scale-out-live")
API_WORKERS = 2  # gunicorn workers per master
API_THREADS = 4
PGBOUNCER_POOL = 8  # server connections PgBouncer keeps for the API
EXACT_TRIALS = 10
NUDGES = 300

HAPROXY_CONFIG = """\
global
    maxconn 4096
defaults
    mode http
    timeout connect 5s
    timeout client 60s
    timeout server 60s
    option http-keep-alive
    http-reuse safe
frontend api
    bind 127.0.0.1:{port}
    default_backend api_hosts
backend api_hosts
    balance roundrobin
{servers}
"""

BRIDGE_CONFIG = """\
listener {port} 127.0.0.1
allow_anonymous true
persistence false
connection scale-out-bridge
address 127.0.0.1:{remote_port}
topic devices/+/jobs/notify in 1
cleansession true
"""

LIVE_JOB_SQL = """
INSERT INTO job_executions (job_id, job_name, job_document, target_type, status, total_devices,
                            fanout_status)
VALUES (%(job_id)s, 'bench live job', %(document)s, 'all', 'QUEUED', %(devices)s, 'DONE')
"""
LIVE_ROWS_SQL = """
INSERT INTO device_job_status (job_id, device_uuid)
SELECT %(job_id)s, md5('bench-device-' || i)::uuid FROM generate_series(1, %(devices)s) AS i;
"""


class Results:
    """The table: one row per figure, one instance next to scaled out."""

    def __init__(self) -> None:
        self.rows: list[tuple[str, str, str, str]] = []

    def add(self, figure: str, one: str, two: str, note: str = "") -> None:
        self.rows.append((figure, one, two, note))
        print(f"  {figure}: one {one} | scaled out {two} {note}", flush=True)

    def print(self) -> None:
        widths = [max(len(r[i]) for r in self.rows + [HEAD]) for i in range(4)]
        for row in [HEAD, tuple("-" * w for w in widths), *self.rows]:
            print("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)))


HEAD = ("figure", "one instance", "scaled out", "")


def run_quietly(argv: list[str], **kwargs) -> subprocess.Popen:
    return subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, **kwargs)


def wait_for_port(port: int, what: str) -> None:
    def is_open() -> bool:
        with socket.socket() as sock:
            return sock.connect_ex(("127.0.0.1", port)) == 0
    wait_until(is_open, 15, what)


class HAProxy:
    def __init__(self, upstream_ports: list[int], directory: Path) -> None:
        self.port = free_port()
        servers = "\n".join(f"    server api{i} 127.0.0.1:{p} maxconn 64"
                            for i, p in enumerate(upstream_ports))
        config = directory / "haproxy.cfg"
        config.write_text(HAPROXY_CONFIG.format(port=self.port, servers=servers))
        self.process = run_quietly([shutil.which("haproxy") or "/usr/sbin/haproxy", "-db",
                                    "-f", str(config)])
        wait_for_port(self.port, "HAProxy listening")
        self.url = f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)


class RabbitVhost:
    """A virtual host of the run's own on the machine's RabbitMQ, deleted afterwards."""

    def __init__(self) -> None:
        self.name = f"djbench-{uuid.uuid4().hex[:8]}"
        subprocess.run(["rabbitmqctl", "-q", "add_vhost", self.name], check=True)
        subprocess.run(["rabbitmqctl", "-q", "set_permissions", "-p", self.name, "guest",
                        ".*", ".*", ".*"], check=True)
        self.url = f"amqp://guest:guest@127.0.0.1:5672/{self.name}"

    def delete(self) -> None:
        subprocess.run(["rabbitmqctl", "-q", "delete_vhost", self.name], check=False)


def server_connections(url: str) -> int:
    """Backends on the benchmark's database (this query's own excluded)."""
    with psycopg.connect(url, autocommit=True) as conn:
        return conn.execute("SELECT count(*) FROM pg_stat_activity WHERE datname ="
                            " current_database() AND pid <> pg_backend_pid()").fetchone()[0]


def peak_connections_during(url: str, load) -> tuple[dict, int]:
    """Run ``load()`` while sampling the database's backends; answer its result and the peak."""
    peak = [0]
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            peak[0] = max(peak[0], server_connections(url))
            time.sleep(0.5)

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        return load(), peak[0]
    finally:
        stop.set()
        sampler.join()


def rate(run: dict) -> str:
    errors = f", {run['errors']} errors" if run["errors"] else ""
    return f"{run['rps']:.0f}/s p99 {run['p99_ms']:.0f} ms{errors}"


def get_json(url: str, token: str, no_cache: bool = False) -> dict:
    headers = {"Authorization": f"Bearer {token}"}
    if no_cache:
        headers["Cache-Control"] = "no-cache"
    request = urllib.request.Request(url, headers=headers)
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def report(base_url: str, job_id: str, i: int, status: str) -> None:
    request = urllib.request.Request(
        f"{base_url}/api/v1/devices/{device_uuid(i)}/jobs/{job_id}/status", method="PATCH",
        data=json.dumps({"status": status}).encode(), headers={
            "Authorization": f"Bearer {device_token(i)}", "Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10):
        pass


def served_after_execute(via: str, served_by: str) -> list[float]:
    """Ms from a job executed through ``via`` until ``served_by`` hands it to its device, a
    device both had answered idle from memory just before; over EXACT_TRIALS devices."""
    api = Api(via)
    delays = []
    for trial in range(EXACT_TRIALS):
        i = 1000 + trial + (EXACT_TRIALS if via == served_by else 0)
        poll_url = f"{served_by}/api/v1/devices/{device_uuid(i)}/jobs/next"
        for _ in range(2 * API_WORKERS):  # every worker of both learns the device idle
            for base in {via, served_by}:
                get_json(f"{base}/api/v1/devices/{device_uuid(i)}/jobs/next", device_token(i))
        answer, _ = api.execute({"job_name": "bench exact", "job_document": DIAGNOSTIC,
                                 "target_type": "device", "target_devices": [
                                     str(device_uuid(i))]})
        started = time.perf_counter()
        job_id = answer["job"]["job_id"]
        while get_json(poll_url, device_token(i)).get("jobId") != job_id:
            time.sleep(0.002)
        delays.append((time.perf_counter() - started) * 1000)
        report(served_by, job_id, i, "SUCCEEDED")
    return delays


def ms_summary(samples: list[float]) -> str:
    return f"median {statistics.median(samples):.0f} ms, max {max(samples):.0f} ms"


def fan_out(url: str, api_url: str, broker_url: str, jobs: int, workers_started: int,
            devices: int) -> tuple[float, bool]:
    """Execute ``jobs`` jobs on the whole fleet, each fan-out task sent once per worker (a
    copy per worker: two copies of one fan-out take turns on its cursor); answer the seconds
    to the last row and whether every job got each device exactly once."""
    api = Api(api_url)
    celery = build_celery_app(replace(Settings(), celery_broker_url=broker_url))
    started = time.perf_counter()
    job_ids = [api.execute({"job_name": "bench fan-out", "job_document": DIAGNOSTIC,
                            "target_type": "all"})[0]["job"]["job_id"] for _ in range(jobs)]
    for job_id in job_ids:
        for _ in range(workers_started - 1):
            celery.send_task(FAN_OUT_TASK, args=[job_id])
    with psycopg.connect(url, autocommit=True) as conn:
        def all_done() -> bool:
            return conn.execute("SELECT bool_and(fanout_status = 'DONE') FROM job_executions"
                                " WHERE job_id = ANY(%s::uuid[])", (job_ids,)).fetchone()[0]
        wait_until(all_done, 3600, "the fan-outs done", interval_s=0.05)
        seconds = time.perf_counter() - started
        once = all(conn.execute(
            "SELECT count(*) = %s AND count(DISTINCT device_uuid) = %s FROM device_job_status"
            " WHERE job_id = %s", (devices, devices, job_id)).fetchone()[0]
            for job_id in job_ids)
        conn.execute("DELETE FROM job_executions WHERE job_id = ANY(%s::uuid[])", (job_ids,))
    return seconds, once


def nudge_latencies(publish_port: int, subscribe_port: int) -> tuple[list[float], int]:
    """Publish NUDGES nudges (the server's publisher) on one broker, hear them as a device on
    the other; answer the latencies in ms and how many arrived."""
    heard: dict[str, float] = {}
    subscribed = threading.Event()
    device = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2,
                         client_id=f"device-{uuid.uuid4().hex[:8]}")
    device.on_connect = lambda c, *_: c.subscribe("devices/+/jobs/notify", qos=1)
    device.on_subscribe = lambda *_: subscribed.set()
    device.on_message = lambda c, u, m: heard.setdefault(json.loads(m.payload)["jobId"],
                                                         time.perf_counter())
    device.connect("127.0.0.1", subscribe_port)
    device.loop_start()
    assert subscribed.wait(10), "the device could not subscribe"
    time.sleep(1)  # the bridge subscribes on the remote broker on its own schedule
    publisher = NudgePublisher(f"mqtt://127.0.0.1:{publish_port}")
    sent: dict[str, float] = {}
    try:
        for _ in range(NUDGES):
            job_id = str(uuid.uuid4())
            sent[job_id] = time.perf_counter()
            publisher.publish(job_id, "queued", [uuid.uuid4()])
            time.sleep(0.005)
        wait_until(lambda: len(heard) >= NUDGES, 10, "the nudges heard")
    except AssertionError:
        pass
    finally:
        publisher.close()
        device.disconnect()
        device.loop_stop()
    latencies = [(heard[j] - t) * 1000 for j, t in sent.items() if j in heard]
    return latencies, len(latencies)


def bench_mqtt(results: Results, directory: Path) -> None:
    mosquitto = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    first, second = free_port(), free_port()
    (directory / "first.conf").write_text(
        f"listener {first} 127.0.0.1\nallow_anonymous true\npersistence false\n")
    (directory / "second.conf").write_text(BRIDGE_CONFIG.format(port=second, remote_port=first))
    brokers = [run_quietly([mosquitto, "-c", str(directory / name)])
               for name in ("first.conf", "second.conf")]
    try:
        wait_for_port(first, "the first Mosquitto")
        wait_for_port(second, "the second Mosquitto")
        same, same_n = nudge_latencies(first, first)
        bridged, bridged_n = nudge_latencies(first, second)
    finally:
        for broker in brokers:
            broker.terminate()
            broker.wait(timeout=10)
    results.add("nudge publish -> device hears it",
                f"{same_n}/{NUDGES} heard, p50 {statistics.median(same):.1f} ms",
                f"{bridged_n}/{NUDGES} heard, p50 {statistics.median(bridged):.1f} ms",
                "(published on broker 1; device on broker 1 | on bridged broker 2)")


def bench(url: str, args, directory: Path, results: Results) -> None:
    devices_file = directory / "devices.txt"
    write_device_list(args.devices, devices_file)
    vhost = RabbitVhost()
    bouncer = PgBouncer(pool_size=PGBOUNCER_POOL, pg_port=args.pg_port)
    try:
        settings = Settings(database_url=url, admin_token=ADMIN_TOKEN, mqtt_url="",
                            celery_broker_url=vhost.url, rate_limit_device_per_min=0,
                            poll_after_s=300)
        database = psycopg.conninfo.conninfo_to_dict(url)["dbname"]
        pooled = replace(settings, database_url=bouncer.url(database), direct_database_url=url,
                         db_prepared_statements=False)
        with ServerProcesses(directory / "servers") as servers:
            first = servers.start_api(settings, API_WORKERS, API_THREADS).url
            second = servers.start_api(settings, API_WORKERS, API_THREADS).url
            balancer = HAProxy([int(first.rsplit(":", 1)[1]), int(second.rsplit(":", 1)[1])],
                               directory)
            try:
                bench_api(url, args, devices_file, first, second, balancer.url, servers,
                          settings, results)
                print("PgBouncer", flush=True)
                bench_pgbouncer(url, args, devices_file, servers, settings, pooled, results)
                print("fan-out", flush=True)
                bench_fanout_split(url, first, vhost.url, args.devices, servers, settings,
                                   results)
            finally:
                balancer.stop()
    finally:
        bouncer.stop()
        vhost.delete()


def backends_of_a_master(url: str, args, devices_file: Path, servers: ServerProcesses,
                         settings: Settings) -> tuple[dict, int, int]:
    """Start a master, load it with polls reading PostgreSQL, stop it; answer the load's
    figures and the PostgreSQL backends it added, idle and at peak."""
    baseline = server_connections(url)
    master = servers.start_api(settings, API_WORKERS, API_THREADS)
    wrk(master.url, "next", devices_file, 3, args.connections)
    idle = server_connections(url) - baseline
    run, peak = peak_connections_during(url, lambda: wrk(
        master.url, "next", devices_file, args.duration, args.connections))
    master.stop()
    return run, idle, peak - baseline


def bench_pgbouncer(url: str, args, devices_file: Path, servers: ServerProcesses,
                    settings: Settings, pooled: Settings, results: Results) -> None:
    direct_run, direct_idle, direct_peak = backends_of_a_master(
        url, args, devices_file, servers, settings)
    pooled_run, pooled_idle, pooled_peak = backends_of_a_master(
        url, args, devices_file, servers, pooled)
    results.add("polls reading PostgreSQL: direct | via PgBouncer", rate(direct_run),
                rate(pooled_run), f"(transaction pooling, pool of {PGBOUNCER_POOL})")
    results.add("PostgreSQL backends of a master: idle, loaded",
                f"{direct_idle}, {direct_peak}", f"{pooled_idle}, {pooled_peak}",
                f"({API_WORKERS} workers x {API_THREADS} threads; via PgBouncer: its pool"
                " + one LISTEN per worker)")


def bench_api(url: str, args, devices_file: Path, first: str, second: str, balanced: str,
              servers: ServerProcesses, settings: Settings, results: Results) -> None:
    print("API behind HAProxy", flush=True)
    for base in (first, balanced):
        wrk(base, "next", devices_file, 5, args.connections)  # warm-up: caches loaded
    results.add("GET /healthz", rate(wrk(first, "healthz", None, args.duration,
                                         args.connections)),
                rate(wrk(balanced, "healthz", None, args.duration, args.connections)),
                "(one master direct | two behind HAProxy)")
    results.add("idle polls (answered from memory)",
                rate(wrk(first, "next", devices_file, args.duration, args.connections)),
                rate(wrk(balanced, "next", devices_file, args.duration, args.connections)))
    servers.start_worker(settings, concurrency=1)
    results.add("job executed on A, served to its device by",
                ms_summary(served_after_execute(first, first)),
                ms_summary(served_after_execute(first, second)),
                "(A | B; fan-out by the worker included, no Cache-Control: no-cache)")
    with psycopg.connect(url, autocommit=True) as conn:
        live = {"job_id": LIVE_JOB, "devices": args.devices, "document": json.dumps(DIAGNOSTIC)}
        conn.execute(LIVE_JOB_SQL, live)
        conn.execute(LIVE_ROWS_SQL, live)
    vacuum_analyze(url)
    for base in (first, balanced):
        wrk(base, "next", devices_file, 3, args.connections)
    results.add("polls reading PostgreSQL (each has a job)",
                rate(wrk(first, "next", devices_file, args.duration, args.connections)),
                rate(wrk(balanced, "next", devices_file, args.duration, args.connections)))
    results.add("IN_PROGRESS reports",
                rate(wrk(first, "progress", devices_file, args.duration, args.connections,
                         job_id=str(LIVE_JOB))),
                rate(wrk(balanced, "progress", devices_file, args.duration, args.connections,
                         job_id=str(LIVE_JOB))))


def bench_fanout_split(url: str, api_url: str, broker_url: str, devices: int,
                       servers: ServerProcesses, settings: Settings, results: Results) -> None:
    """The worker started for the API part is the first; a second joins for the second run."""
    one_job_one, once_a = fan_out(url, api_url, broker_url, 1, 1, devices)
    two_jobs_one, once_b = fan_out(url, api_url, broker_url, 2, 1, devices)
    servers.start_worker(settings, concurrency=1)
    one_job_two, once_c = fan_out(url, api_url, broker_url, 1, 2, devices)
    two_jobs_two, once_d = fan_out(url, api_url, broker_url, 2, 2, devices)
    each_once = "each device once" if all((once_a, once_b, once_c, once_d)) else "DUPLICATES"
    results.add(f"fan-out of 1 job to {devices:,} devices",
                f"{one_job_one:.1f} s ({devices / one_job_one:,.0f} rows/s)",
                f"{one_job_two:.1f} s ({devices / one_job_two:,.0f} rows/s)",
                f"(1 | 2 workers on RabbitMQ; {each_once})")
    results.add(f"fan-out of 2 jobs to {devices:,} devices each",
                f"{two_jobs_one:.1f} s ({2 * devices / two_jobs_one:,.0f} rows/s)",
                f"{two_jobs_two:.1f} s ({2 * devices / two_jobs_two:,.0f} rows/s)",
                "(1 | 2 workers)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=200_000)
    parser.add_argument("--duration", type=int, default=20, help="seconds per wrk run")
    parser.add_argument("--connections", type=int, default=32)
    args = parser.parse_args()
    require_wrk()
    subprocess.run([str(PROJECT_DIR / "deploy" / "scale-out-services.sh")], check=True)
    directory = Path(tempfile.mkdtemp(prefix="device-jobs-scale-out-"))
    results = Results()
    server = PrivatePostgres()
    server.start()
    args.pg_port = server.port
    started = time.monotonic()
    try:
        with bench_database("djbench_scale_out", server.url) as url:
            register_fleet(url, args.devices)
            vacuum_analyze(url)
            print(f"fleet of {args.devices:,} devices registered", flush=True)
            bench(url, args, directory, results)
        print("MQTT bridge", flush=True)
        bench_mqtt(results, directory)
    finally:
        server.remove()
    print(f"\nscale-out on one machine ({args.devices:,} devices, wrk {args.connections}"
          f" connections x {args.duration} s, {time.monotonic() - started:.0f} s in all)")
    results.print()


if __name__ == "__main__":
    main()
