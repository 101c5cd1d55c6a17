"""Flower, started with `dispatcher flower`, lists the worker and the fan-out task of a job."""

from __future__ import annotations

import json
import time
import urllib.request

import pytest
from processes import ServerProcess, free_port, settings_environment

from dispatcher.commands import stack
from dispatcher.commands.demo.processes import answers
from dispatcher.sender import FAN_OUT_TASK

pytestmark = pytest.mark.slow
WAIT_S = 30.0


def flower_json(url: str):
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.loads(response.read())


def eventually(probe, what: str):
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        found = probe()
        if found:
            return found
        time.sleep(0.3)
    pytest.fail(f"Flower never showed {what}")


@pytest.fixture
def flower(settings, server_processes, tmp_path):
    port = free_port()
    env = {**settings_environment(settings), "FLOWER_UNAUTHENTICATED_API": "1"}
    process = ServerProcess(
        "flower", stack.dispatcher_command("flower", "--port", str(port)), env,
        tmp_path / "flower.log", lambda p: answers(f"http://127.0.0.1:{port}/healthcheck"),
    )
    server_processes.started.append(process)
    process.start()
    return f"http://127.0.0.1:{port}"


def test_flower_lists_the_worker_and_the_fan_out_task_of_a_job(
    client, admin_headers, celery_worker, flower
):
    workers = eventually(lambda: flower_json(f"{flower}/api/workers?refresh=1"), "the worker")
    worker_name = next(iter(workers))
    assert worker_name.startswith("test-")

    device = client.post("/api/v1/devices", headers=admin_headers,
                         json={"device_name": "pi-flower"}).get_json()
    executed = client.post("/api/v1/jobs/execute", headers=admin_headers, json={
        "job_name": "Custom diagnostic", "target_type": "device",
        "target_devices": [device["uuid"]],
        "job_document": {"version": "1.0",
                         "steps": [{"name": "Disk", "type": "runCommand",
                                    "input": {"command": "df,-h"}}]},
    })
    assert executed.status_code == 201, executed.get_json()
    job_id = executed.get_json()["job"]["job_id"]

    def fan_out_of_this_job():
        tasks = flower_json(f"{flower}/api/tasks?taskname={FAN_OUT_TASK}")
        return [t for t in tasks.values() if job_id in (t.get("args") or "")
                and t.get("state") == "SUCCESS"]

    [task] = eventually(fan_out_of_this_job, f"the fan-out task of job {job_id} succeeding")
    assert task["name"] == FAN_OUT_TASK
    assert task["worker"] == worker_name
