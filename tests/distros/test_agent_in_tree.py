"""A real device in a Debian tree: the agent's .deb installed with apt, enrolled with an
enrollment token, run as its systemd unit runs it, against the real API and worker on this
machine (a chroot shares the host's loopback).

Bullseye (Python 3.9, paho-mqtt 1.5) and Trixie (Python 3.13, paho-mqtt 2.1): a refused token
writes nothing; a pending device is accepted; a queued job reaches the agent by MQTT nudge
(its poll interval is far longer than the test waits) and runs a handler; the agent survives
a restart of its service; the same machine enrolling again stays one device.
There is no systemd in a chroot, so the unit's ExecStart runs directly, with its Environment.
"""

from __future__ import annotations

import os
import signal
import uuid
from dataclasses import replace
from pathlib import Path

import pytest
from json_http import JsonHttp
from processes import wait_until
from suite_constants import TEST_ADMIN_TOKEN
from trees import OLDEST_AND_NEWEST, PYTHON_VERSIONS, Root, build_agent_deb, root_of

pytestmark = pytest.mark.slow

ADMIN = {"Authorization": f"Bearer {TEST_ADMIN_TOKEN}"}
UNIT = "/lib/systemd/system/jobs-agent.service"
# Far longer than any wait below: a job that runs came by its MQTT nudge, not by a poll.
POLL_INTERVAL_S = 600
# As the AWS IoT Device Client does, the agent passes a handler its user (runAsUser) first.
HANDLER = ("#!/bin/sh\necho \"hello $2 from $(python3 -c "
           "'import sys; print(\"%d.%d\" % sys.version_info[:2])')\"\n")
DOCUMENT = {"version": "1.0", "includeStdOut": True, "steps": [
    {"action": {"name": "greet", "type": "runHandler",
                "input": {"handler": "greet.sh", "args": ["fleet"], "path": "default"}}}]}


@pytest.fixture(scope="module")
def agent_deb(tmp_path_factory) -> Path:
    return build_agent_deb("0.1.0", tmp_path_factory.mktemp("deb"))


def unit_command(root: Root) -> tuple[list[str], dict[str, str]]:
    """ExecStart and Environment of the installed unit, as systemd would run them."""
    argv: list[str] = []
    env: dict[str, str] = {}
    for line in root.file(UNIT).read_text().splitlines():
        key, _, value = line.partition("=")
        if key == "ExecStart":
            argv = value.split()
        elif key == "Environment":
            name, _, setting = value.partition("=")
            env[name] = setting
    return argv, env


class Device:
    """The agent's service in ``root``: started and stopped as systemd would."""

    def __init__(self, root: Root, log_path: Path) -> None:
        self.root = root
        self.log_path = log_path
        self.process = None

    def start(self) -> None:
        argv, env = unit_command(self.root)
        self.process = self.root.popen(argv, self.log_path, env)
        wait_until(lambda: self.log().count("mqtt subscribed") > self.subscriptions, 60,
                   "the agent subscribed to its nudges")

    @property
    def subscriptions(self) -> int:
        return getattr(self, "_seen", 0)

    def log(self) -> str:
        return self.log_path.read_text() if self.log_path.exists() else ""

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            assert self.process.wait(timeout=60) == 0, self.log()[-3000:]
        self._seen = self.log().count("mqtt subscribed")


def run_job(http: JsonHttp, device_uuid: str) -> dict:
    status, answer = http.request("POST", "/api/v1/jobs/execute", {
        "job_name": "greet", "job_document": DOCUMENT, "target_type": "device",
        "target_devices": [device_uuid]}, ADMIN)
    assert status == 201, answer
    job_id = answer["job"]["job_id"]

    def finished() -> dict | None:
        rows = http.request("GET", f"/api/v1/jobs/executions/{job_id}", None,
                            ADMIN)[1]["device_statuses"]
        return rows[0] if rows and rows[0]["status"] not in ("QUEUED", "IN_PROGRESS") else None

    return wait_until(finished, 90, "the job finished")


def count_devices(http: JsonHttp) -> int:
    return http.request("GET", "/api/v1/devices", None, ADMIN)[1]["total"]


@pytest.mark.parametrize("suite", OLDEST_AND_NEWEST)
def test_a_device_installs_enrolls_runs_jobs_and_survives_a_restart(
        suite: str, agent_deb: Path, settings, server_processes, tmp_path: Path) -> None:
    settings = replace(settings, mqtt_url="mqtt://127.0.0.1:1883")
    server_processes.start_worker(settings)
    api = server_processes.start_api(settings)
    http = JsonHttp(api.url)
    with root_of(suite, tmp_path / suite) as root:
        (root.file("/etc/machine-id")).write_text(uuid.uuid4().hex + "\n")
        (root.file("/tmp") / agent_deb.name).write_bytes(agent_deb.read_bytes())
        root.run(["apt-get", "install", "-y", f"/tmp/{agent_deb.name}"])
        handler = root.file("/etc/jobs-agent/handlers/greet.sh")
        handler.write_text(HANDLER)
        handler.chmod(0o700)

        enroll = ["jobs-agent", "enroll", "--server", api.url, "--name", f"pi-{suite}"]
        refused = root.run([*enroll, "--enrollment-token", "not-a-token"], check=False)
        assert refused.returncode == 1
        assert "Unknown enrollment token" in refused.stderr
        assert not root.file("/etc/jobs-agent/agent.conf").exists()
        assert not root.file("/etc/jobs-agent/token").exists()

        status, made = http.request("POST", "/api/v1/enrollment-tokens", {
            "name": f"{suite} batch", "device_type": "raspberry-pi",
            "requires_acceptance": True}, ADMIN)
        assert status == 201, made
        enrolled = root.run([*enroll, "--enrollment-token", made["enrollment_token"]])
        assert "pending: an operator must accept" in enrolled.stdout
        assert "systemd is not running here" in enrolled.stdout
        with root.file("/etc/jobs-agent/agent.conf").open("a") as config:
            config.write(f"mqtt_url = mqtt://127.0.0.1:1883\npoll_interval_s = {POLL_INTERVAL_S}\n")
        pending = http.request("GET", "/api/v1/devices/pending", None, ADMIN)[1]
        [waiting] = pending["pending_enrollments"]
        assert waiting["device_name"] == f"pi-{suite}"
        status, _ = http.request("POST", f"/api/v1/devices/pending/{waiting['uuid']}/accept",
                                 None, ADMIN)
        assert status == 201

        device = Device(root, tmp_path / f"agent-{suite}.log")
        try:
            device.start()
            first = run_job(http, waiting["uuid"])
            assert first["status"] == "SUCCEEDED", device.log()[-3000:]
            assert first["stdout"] == f"hello fleet from {PYTHON_VERSIONS[suite]}\n"

            # The service restarts (a package upgrade, a crash): the agent goes on.
            device.stop()
            device.start()
            assert run_job(http, waiting["uuid"])["status"] == "SUCCEEDED", device.log()[-3000:]

            # Enrolling the same machine again keeps the device; its new token works once the
            # service restarts with it.
            device.stop()
            again = root.run([*enroll, "--enrollment-token", made["enrollment_token"]])
            assert f"({waiting['uuid']})" in again.stdout
            # What was added to the config (MQTT, the poll interval) is kept.
            device.start()
            assert run_job(http, waiting["uuid"])["status"] == "SUCCEEDED", device.log()[-3000:]
            assert count_devices(http) == 1
        finally:
            device.stop()
