"""A whole deployment of a chaos test's own: its PostgreSQL, Redis, Mosquitto (and RabbitMQ when
that is the broker), the API under gunicorn, Celery worker and beat, and ``jobs-agent``
processes, with what a test needs to fault them and to check that nothing was lost or doubled.

The database is read through fresh connections (``sql``), never the process's pool, so a test
reads it as soon as PostgreSQL is back. ``close`` stops every process and service, however the
test ended.
"""

from __future__ import annotations

import collections
import contextlib
import http.client
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

import psycopg
from agent_processes import start_agent
from json_http import JsonHttp
from private_services import PostgresService, PrivateMosquitto, PrivateRabbitMQ, PrivateRedis
from processes import ServerProcess, ServerProcesses, settings_environment, wait_until
from psycopg.rows import dict_row
from tcp_proxy import TcpProxy

from dispatcher.commands import stack
from dispatcher.config import Settings
from dispatcher.migrate import migrate

# The stack's own admin token (server commands refuse one under 32 characters).
TEST_ADMIN_TOKEN = "chaos-admin-token-0123456789abcdef-0123"
ADMIN = {"Authorization": f"Bearer {TEST_ADMIN_TOKEN}"}
BROKERS = ("redis", "rabbitmq")
# Quick sweeps: a fan-out that was never sent is sent again within seconds, not a minute.
CHAOS_SETTINGS = {
    "poll_after_s": 1,
    "fanout_sweep_interval_s": 1,
    "fanout_stalled_after_s": 3,
    "policy_sweep_interval_s": 1,
    "fleet_count_interval_s": 5,
    "db_pool_timeout_s": 2,
}
FINAL = ("SUCCEEDED", "FAILED", "TIMED_OUT", "REJECTED", "CANCELED", "REMOVED")


class ChaosStack:
    def __init__(self, root: Path, broker: str = "redis", db_proxy: bool = False,
                 **overrides) -> None:
        assert broker in BROKERS, broker
        self.root = root
        self.broker = broker
        self.services: list = []
        self.proxy: TcpProxy | None = None
        self.processes = ServerProcesses(root / "processes")
        try:
            self.postgres = self._start(PostgresService())
            with psycopg.connect(self.postgres.url("postgres"), autocommit=True) as conn:
                conn.execute("CREATE DATABASE device_jobs")
            self.database_url = self.postgres.url("device_jobs")
            migrate(self.database_url)
            self.redis = self._start(PrivateRedis(root / "redis"))
            self.mosquitto = self._start(PrivateMosquitto(root / "mosquitto"))
            self.rabbitmq = (self._start(PrivateRabbitMQ(root / "rabbitmq"))
                             if broker == "rabbitmq" else None)
            api_database_url = self.database_url
            if db_proxy:
                self.proxy = TcpProxy(self.postgres.port)
                api_database_url = self.database_url.replace(
                    f":{self.postgres.port}/", f":{self.proxy.port}/")
            self.settings = replace(Settings(
                database_url=self.database_url,
                celery_broker_url=(self.rabbitmq.url if self.rabbitmq
                                   else self.redis.url(0)),
                redis_url=self.redis.url(1),
                mqtt_url=self.mosquitto.url,
                admin_token=TEST_ADMIN_TOKEN,
                auth_disabled=False,
            ), **{**CHAOS_SETTINGS, **overrides})
            self.api_settings = replace(self.settings, database_url=api_database_url)
        except BaseException:
            self.close()
            raise
        self.api: ServerProcess | None = None
        self.http: JsonHttp | None = None

    @property
    def broker_service(self) -> PrivateRedis | PrivateRabbitMQ:
        return self.rabbitmq or self.redis

    def _start(self, service):
        self.services.append(service)
        service.start()
        return service

    def close(self) -> None:
        self.processes.stop_all()
        if self.proxy is not None:
            self.proxy.close()
        for service in reversed(self.services):
            service.remove()

    # The server processes.
    def start_api(self, workers: int = 1, threads: int = 8) -> ServerProcess:
        self.api = self.processes.start_api(self.api_settings, workers, threads)
        self.http = JsonHttp(self.api.url, timeout_s=30)
        return self.api

    def restart_api(self) -> ServerProcess:
        """The API again, on its port (agents keep their server URL)."""
        assert self.api is not None
        self.api.start()
        self.http = JsonHttp(self.api.url, timeout_s=30)
        return self.api

    def start_worker(self, concurrency: int = 2, **overrides) -> ServerProcess:
        """A worker started as production starts it (``dispatcher worker``): with mingle,
        gossip and heartbeats, whose broadcast consumers are part of what a broker fault hits."""
        name = f"chaos-{len(self.processes.started)}@%h"
        argv = stack.worker_command("INFO", None, concurrency, name)
        worker = ServerProcess(
            "celery worker", argv, settings_environment(replace(self.settings, **overrides)),
            self.processes.directory / f"worker-{len(self.processes.started)}.log",
            lambda process: " ready." in process.log_text())
        self.processes.started.append(worker)
        return worker.start()

    def start_beat(self) -> ServerProcess:
        return self.processes.start_beat(self.settings)

    # The API, as an operator.
    def call(self, method: str, path: str, body: object = None, expect: int = 200) -> dict:
        assert self.http is not None
        status, answer = self.http.request(method, f"/api/v1{path}", body, ADMIN)
        assert status == expect, (method, path, status, answer)
        return answer or {}

    def register(self, name: str, device_type: str = "chaos-pi") -> dict:
        device = self.call("POST", "/devices", {"device_name": name, "device_type": device_type},
                           expect=201)
        device["home"] = self.root / "devices" / name
        device["home"].mkdir(parents=True)
        return device

    def start_agent(self, device: dict, poll_interval_s: float = 1.0, mqtt: bool = False,
                    **settings: str) -> ServerProcess:
        assert self.api is not None
        return start_agent(self.processes, self.api.url, device, device["home"],
                           poll_interval_s, self.mosquitto.url if mqtt else "",
                           log_level="DEBUG", **settings)

    def execute(self, body: dict) -> str:
        answer = self.call("POST", "/jobs/execute", {"job_name": "chaos", **body}, expect=201)
        return answer["job"]["job_id"]

    # The database, read directly.
    def sql(self, query: str, *params: object) -> list[dict]:
        with psycopg.connect(self.database_url, row_factory=dict_row, connect_timeout=5) as c:
            return c.execute(query, params).fetchall()

    def bulk_register(self, count: int, device_type: str = "chaos-bulk") -> None:
        """``count`` devices registered in one statement (no agent holds their tokens)."""
        self.sql("INSERT INTO devices (uuid, device_name, device_type, attributes, token_hash)"
                 " SELECT gen_random_uuid(), %s || '-' || i, %s, '{}',"
                 " sha256(uuid_send(gen_random_uuid())) FROM generate_series(1, %s) AS i"
                 " RETURNING 1", device_type, device_type, count)

    @contextlib.contextmanager
    def fan_out_held_at(self, position: int) -> Iterator[None]:
        """A transaction holds the device at ``position`` (in uuid order) until the block ends:
        a fan-out waits at the chunk that reaches it, the chunks before committed."""
        conn = psycopg.connect(self.database_url)
        try:
            held = conn.execute("SELECT uuid FROM devices ORDER BY uuid OFFSET %s LIMIT 1",
                                (position,)).fetchone()[0]
            conn.execute("SELECT 1 FROM devices WHERE uuid = %s FOR UPDATE", (held,))
            yield
        finally:
            with contextlib.suppress(psycopg.Error):  # PostgreSQL may have gone meanwhile
                conn.close()

    def fanout(self, job_id: str) -> dict:
        return self.sql(
            "SELECT e.status, e.fanout_status, e.total_devices,"
            " (SELECT count(*) FROM device_job_status s WHERE s.job_id = e.job_id) AS rows,"
            " (SELECT count(DISTINCT device_uuid) FROM device_job_status s"
            "   WHERE s.job_id = e.job_id) AS devices"
            " FROM job_executions e WHERE e.job_id = %s", job_id)[0]

    def wait_fanned_out(self, job_id: str, timeout_s: float = 90.0,
                        alive: ServerProcess | None = None) -> dict:
        """The job's fan-out state once DONE; fails at once if ``alive`` (a worker) exits."""
        def done() -> dict | None:
            if alive is not None:
                assert alive.is_running(), f"the worker exited:\n{alive.log_text()[-4000:]}"
            state = self.fanout(job_id)
            return state if state["fanout_status"] == "DONE" else None
        return wait_until(done, timeout_s, f"fan-out of {job_id}")

    def job(self, job_id: str) -> dict:
        return self.sql("SELECT * FROM job_executions WHERE job_id = %s", job_id)[0]

    def wait_job(self, job_id: str, *statuses: str, timeout_s: float = 90.0) -> dict:
        return wait_until(lambda: (j := self.job(job_id))["status"] in statuses and j,
                          timeout_s, f"job {job_id} in {statuses}")

    def device_reports(self, job_id: str) -> dict[str, list[str]]:
        """Per device, the statuses its own reports moved its row to, in order."""
        rows = self.sql(
            "SELECT device_uuid::text AS device, details->>'to' AS status FROM job_events"
            " WHERE job_id = %s AND action = 'device_job.status_changed'"
            " AND actor LIKE 'device%%' ORDER BY id", job_id)
        reports: dict[str, list[str]] = collections.defaultdict(list)
        for row in rows:
            reports[row["device"]].append(row["status"])
        return dict(reports)

    def assert_each_result_once(self, job_id: str, devices: list[dict],
                                status: str = "SUCCEEDED") -> None:
        """Every device reported its result exactly once, and the job's counters say so."""
        reports = self.device_reports(job_id)
        for device in devices:
            finals = [s for s in reports.get(str(device["uuid"]), []) if s in FINAL]
            assert finals == [status], (device["device_name"], reports.get(str(device["uuid"])))
        rows = self.sql("SELECT status, count(*) AS n FROM device_job_status WHERE job_id = %s"
                        " GROUP BY status", job_id)
        assert {r["status"]: r["n"] for r in rows} == {status: len(devices)}
        job = self.job(job_id)
        assert job["total_devices"] == len(devices)
        if status == "SUCCEEDED":
            assert (job["succeeded_devices"], job["failed_devices"]) == (len(devices), 0)


@dataclass
class Answer:
    at: float  # when the answer came (time.monotonic())
    status: int | str
    retry_after: str | None = None
    took_s: float = 0.0
    path: str = ""


@dataclass
class PollLoad:
    """Devices polling the API from threads (and operators listing devices), every answer
    recorded with its time: what clients saw during a fault. ``status`` is the HTTP code, or
    the error's type name when no answer came (refused, reset, timed out)."""

    url: str
    devices: list[dict]
    interval_s: float = 0.2
    timeout_s: float = 10.0
    operators: int = 0  # threads listing devices as an admin (a query per request)
    answers: list[Answer] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        targets = [(f"/api/v1/devices/{d['uuid']}/jobs/next",
                    {"Authorization": f"Bearer {d['device_token']}"}) for d in self.devices]
        targets += [("/api/v1/devices?limit=5", ADMIN)] * self.operators
        self._threads = [threading.Thread(target=self._run, args=target, daemon=True)
                         for target in targets]

    def __enter__(self) -> PollLoad:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(self.timeout_s + 5)

    def _run(self, path: str, headers: dict[str, str]) -> None:
        host, port = self.url.removeprefix("http://").split(":")
        while not self._stop.is_set():
            conn = http.client.HTTPConnection(host, int(port), timeout=self.timeout_s)
            sent = time.monotonic()
            try:
                conn.request("GET", path, headers=headers)
                response = conn.getresponse()
                response.read()
                answer = Answer(time.monotonic(), response.status,
                                response.getheader("Retry-After"))
            except Exception as exc:  # what a device would see: no answer, and why
                answer = Answer(time.monotonic(), type(exc).__name__)
            finally:
                conn.close()
            answer.took_s, answer.path = answer.at - sent, path
            self.answers.append(answer)
            self._stop.wait(self.interval_s)

    def answers_statuses(self) -> list[int | str]:
        return [a.status for a in self.answers]

    def between(self, start: float, end: float) -> collections.Counter:
        return collections.Counter(a.status for a in self.answers if start <= a.at <= end)

    def first_ok_after(self, moment: float, path_prefix: str = "") -> float | None:
        """Seconds from ``moment`` to the first 200 answered after it (to a request whose
        path starts with ``path_prefix``)."""
        ok = [a.at for a in self.answers
              if a.at >= moment and a.status == 200 and a.path.startswith(path_prefix)]
        return min(ok) - moment if ok else None


def report(name: str, **figures: object) -> None:
    """What clients saw and how long recovery took, in the test's output (``-s`` or on
    failure) and in .artifacts/chaos/<name>.txt."""
    text = "\n".join(f"{key}: {value}" for key, value in figures.items())
    print(f"\n[chaos] {name}\n{text}")
    out = Path(__file__).resolve().parents[2] / ".artifacts" / "chaos"
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{name}.txt").write_text(text + "\n")
