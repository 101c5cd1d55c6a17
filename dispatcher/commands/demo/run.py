"""``dispatcher demo``: the whole system, from nothing, on this machine.

Recreates a demo database and migrates it; starts the API (gunicorn), a Celery worker, beat and
Flower on free ports; registers simulated devices, each running a real ``jobs-agent`` process
(with MQTT nudges when a broker answers); creates a health-check template; executes it on a
group and on every device; shows the progress live; prints a summary; stops everything it
started. Exit 0 only when every device SUCCEEDED.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import sys
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path
from urllib.parse import urlsplit

import psycopg
from psycopg import sql

from dispatcher.commands import stack
from dispatcher.commands.demo.api import ApiClientFactory
from dispatcher.commands.demo.processes import BackgroundProcesses, ProcessFailed, answers
from dispatcher.commands.demo.report import (
    JobSummary,
    ProgressDisplay,
    summarize,
    summary_table,
)
from dispatcher.config import Settings
from dispatcher.migrate import ensure_database, migrate
from schemas.vocabulary import ENDED_JOB, SUCCEEDED

LOCAL_MQTT_URL = "mqtt://127.0.0.1:1883"
START_TIMEOUT_S = 60.0
AGENT_START_TIMEOUT_S = 20.0
PROGRESS_INTERVAL_S = 0.5
# With MQTT a nudge starts the job at once; the poll is the fallback. Without MQTT, poll often.
POLL_INTERVAL_WITH_MQTT_S = 10
POLL_INTERVAL_WITHOUT_MQTT_S = 2

HEALTH_CHECK_TEMPLATE = {
    "name": "health-check",
    "description": "Say hello, show the kernel and the disk space",
    "category": "system",
    "parameters": {"GREETING": "hello from device-jobs"},
    "job_document": {
        "version": "1.0",
        "includeStdOut": True,
        "steps": [
            {"name": "Greet", "type": "runCommand", "input": {"command": "echo,{{GREETING}}"}},
            {"name": "Kernel", "type": "runCommand", "input": {"command": "uname,-a"}},
            {"name": "Disk space", "type": "runCommand", "input": {"command": "df,-h"}},
        ],
    },
    "created_by": "demo",
}
DEVICE_NAME_PREFIXES = {"raspberry-pi": "pi", "simulated-gateway": "gw"}
GROUP_FILTER = {"device_type": "raspberry-pi", "environment": "production"}


@dataclass(frozen=True)
class DemoOptions:
    devices: int = 20
    keep_running: bool = False
    timeout_s: float = 180.0
    database_name: str = "device_jobs_demo"


def say(message: str) -> None:
    print(f"==> {message}", flush=True)


def run_demo(settings: Settings, options: DemoOptions, api_client: ApiClientFactory) -> int:
    """Run the demo, talking to its API through a client that ``api_client`` makes."""
    run_dir = Path(tempfile.mkdtemp(prefix="device-jobs-demo-"))
    processes = BackgroundProcesses(run_dir)
    signal.signal(signal.SIGTERM, _interrupt)
    succeeded = False
    try:
        succeeded = Demo(settings, options, run_dir, processes, api_client).run()
        return 0 if succeeded else 1
    except KeyboardInterrupt:
        say("interrupted")
        return 130
    except ProcessFailed as exc:
        print(f"demo failed: {exc}", file=sys.stderr, flush=True)
        return 1
    finally:
        say("stopping everything the demo started")
        processes.stop_all()
        if succeeded:
            shutil.rmtree(run_dir, ignore_errors=True)
        else:
            say(f"process logs kept in {run_dir}")


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


class Demo:
    def __init__(self, settings: Settings, options: DemoOptions, run_dir: Path,
                 processes: BackgroundProcesses, api_client: ApiClientFactory) -> None:
        self.options = options
        self.run_dir = run_dir
        self.processes = processes
        self.mqtt_url = _reachable_mqtt_url(settings.mqtt_url or LOCAL_MQTT_URL)
        poll_interval_s = (POLL_INTERVAL_WITH_MQTT_S if self.mqtt_url
                           else POLL_INTERVAL_WITHOUT_MQTT_S)
        self.settings = replace(
            settings,
            database_url=psycopg.conninfo.make_conninfo(
                settings.database_url, dbname=options.database_name
            ),
            admin_token=secrets.token_urlsafe(24),
            celery_key_prefix=f"demo{os.getpid()}:",
            mqtt_url=self.mqtt_url,
            poll_after_s=poll_interval_s,
            auth_disabled=False,
        )
        self.poll_interval_s = poll_interval_s
        self.api_port = _free_port()
        self.flower_port = _free_port()
        self.api = api_client(f"http://127.0.0.1:{self.api_port}", self.settings.admin_token)

    def run(self) -> bool:
        self.prepare_database()
        self.start_stack()
        devices = self.register_devices()
        self.start_agents(devices)
        template = self.api.create_template(HEALTH_CHECK_TEMPLATE)
        say(f"template {template['name']!r} created (id {template['id']}): echo, uname -a, df -h")
        jobs = self.execute(template["id"])
        final = self.watch(jobs)
        summaries = self.report(jobs, final)
        succeeded = all(s.all_succeeded for s in summaries)
        self.print_links()
        if self.options.keep_running:
            self.wait_for_ctrl_c()
        return succeeded

    def prepare_database(self) -> None:
        url = self.settings.database_url
        say(f"recreating database {self.options.database_name!r} and applying migrations")
        admin_url = psycopg.conninfo.make_conninfo(url, dbname="postgres")
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                sql.Identifier(self.options.database_name)))
        ensure_database(url)
        migrate(url)

    def start_stack(self) -> None:
        env = stack.local_stack_environment(
            self.run_dir, stack.settings_environment(self.settings)
        )
        commands = stack.local_stack_commands(
            self.run_dir, self.api_port, self.flower_port,
            worker_name=f"demo{os.getpid()}@%h",
        )
        say("starting API (gunicorn), Celery worker, beat and Flower "
            f"(MQTT nudges: {'on, ' + self.mqtt_url if self.mqtt_url else 'off, no broker'})")
        started = {name: self.processes.start(name, argv, env) for name, argv in commands.items()}
        self.processes.wait_until(started["api"], lambda: answers(f"{self.api.url}/readyz"),
                                  START_TIMEOUT_S)
        self.processes.wait_until(started["worker"],
                                  lambda: " ready." in started["worker"].log_text(),
                                  START_TIMEOUT_S)
        flower = f"http://127.0.0.1:{self.flower_port}/healthcheck"
        self.processes.wait_until(started["flower"], lambda: answers(flower), START_TIMEOUT_S)

    def register_devices(self) -> list[dict]:
        say(f"registering {self.options.devices} simulated devices")
        devices = []
        for n in range(self.options.devices):
            device_type = "simulated-gateway" if n % 4 == 3 else "raspberry-pi"
            environment = "production" if n % 2 == 0 else "staging"
            devices.append(self.api.create_device({
                "device_name": f"sim-{DEVICE_NAME_PREFIXES[device_type]}-{n + 1:02d}",
                "device_type": device_type,
                "attributes": {"environment": environment, "site": "demo-lab"},
            }))
        return devices

    def start_agents(self, devices: list[dict]) -> None:
        say(f"starting {len(devices)} jobs-agent processes "
            f"(poll every {self.poll_interval_s}s{', MQTT nudges' if self.mqtt_url else ''})")
        agents = []
        for device in devices:
            home = self.run_dir / "agents" / device["device_name"]
            (home / "handlers").mkdir(parents=True)
            env = {**os.environ, "PYTHONUNBUFFERED": "1",
                   "JOBS_AGENT_SERVER_URL": self.api.url,
                   "JOBS_AGENT_DEVICE_UUID": str(device["uuid"]),
                   "JOBS_AGENT_TOKEN": device["device_token"],
                   "JOBS_AGENT_MQTT_URL": self.mqtt_url,
                   "JOBS_AGENT_POLL_INTERVAL_S": str(self.poll_interval_s),
                   "JOBS_AGENT_STATE_DIR": str(home / "state"),
                   "JOBS_AGENT_HANDLER_DIR": str(home / "handlers")}
            argv = [sys.executable, "-m", "agent", "run"]
            agents.append(self.processes.start(f"agent-{device['device_name']}", argv, env))
        # Jobs reach an agent by polling anyway; waiting for its MQTT subscription only makes
        # the first job start at once, so a slow start is a note, not a failure.
        marker = "mqtt connected" if self.mqtt_url else "jobs-agent starting"
        deadline = time.monotonic() + AGENT_START_TIMEOUT_S
        while not all(marker in agent.log_text() for agent in agents):
            self.processes.check_alive()
            if time.monotonic() > deadline:
                say("some agents are slow to start; their jobs will arrive by polling")
                return
            time.sleep(0.1)

    def execute(self, template_id: int) -> dict[str, dict]:
        group = self.api.execute({
            "job_name": "Health check - production Raspberry Pis",
            "template_id": template_id, "target_type": "group", "target_filter": GROUP_FILTER,
            "created_by": "demo",
        })
        say(f"group job: {group['message']} (filter {json.dumps(GROUP_FILTER)})")
        everyone = self.api.execute({
            "job_name": "Health check all devices", "template_id": template_id,
            "target_type": "all", "parameters": {"GREETING": "hello, fleet"},
            "created_by": "demo",
        })
        say(f"fleet job: {everyone['message']}")
        return {"group": group["job"], "all": everyone["job"]}

    def watch(self, jobs: dict[str, dict]) -> dict[str, dict]:
        display = ProgressDisplay()
        deadline = time.monotonic() + self.options.timeout_s
        while True:
            current = {label: self.api.get_execution(str(job["job_id"]))["job"]
                       for label, job in jobs.items()}
            display.show(current)
            if all(job["status"] in ENDED_JOB for job in current.values()):
                return current
            if time.monotonic() > deadline:
                say(f"gave up waiting after {self.options.timeout_s:.0f}s")
                return current
            self.processes.check_alive()
            time.sleep(PROGRESS_INTERVAL_S)

    def report(self, jobs: dict[str, dict], final: dict[str, dict]) -> list[JobSummary]:
        summaries = []
        sample = None
        for label, job in final.items():
            rows = list(self.api.iter_execution_devices(str(jobs[label]["job_id"])))
            summaries.append(summarize(label, job, rows))
            sample = sample or next((r for r in rows if r["status"] == SUCCEEDED), None)
            for row in rows:
                if row["status"] != SUCCEEDED:
                    print(f"  {row['device_name']}: {row['status']} {row.get('reason') or ''}"
                          f"{(row.get('stderr') or '')[-300:]}")
        print()
        print(summary_table(summaries))
        print("  (start = time from execute to the device reporting IN_PROGRESS)")
        if sample:
            lines = (sample.get("stdout") or "").strip().splitlines()[:3]
            print(f"\n  stdout of {sample['device_name']}:")
            print("\n".join(f"    {line}" for line in lines))
        return summaries

    def print_links(self) -> None:
        base = self.api.url
        print()
        print(f"  Portal      {base}/portal/  (sign in with the admin token "
              f"{self.settings.admin_token})")
        print(f"  Swagger UI  {base}/api/v1/docs")
        print(f"  Flower      http://127.0.0.1:{self.flower_port}/")
        print(f"  Metrics     {base}/metrics")
        print(flush=True)

    def wait_for_ctrl_c(self) -> None:
        say("the stack stays up until Ctrl-C; try:")
        print(f"    curl -H 'Authorization: Bearer {self.settings.admin_token}' "
              f"{self.api.url}/api/v1/jobs/executions", flush=True)
        try:
            while True:
                self.processes.check_alive()
                time.sleep(1)
        except KeyboardInterrupt:  # the way out of --keep-running, not a failure
            print(flush=True)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _reachable_mqtt_url(mqtt_url: str) -> str:
    """``mqtt_url`` when a broker accepts TCP connections there, else "" (nudges off)."""
    parts = urlsplit(mqtt_url)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 1883), 1):
            return mqtt_url
    except OSError:
        return ""
