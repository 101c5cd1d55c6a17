"""The agent against the real API (real Flask app, real PostgreSQL) on a real port.

Jobs are executed through POST /jobs/execute and fanned out inline; the agent polls, runs real
processes and reports over HTTP. Multi-process scenarios are in tests/e2e/test_agent_e2e.py.
"""

from __future__ import annotations

import hashlib
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from job_rows import fan_out
from werkzeug.serving import make_server

from agent.config import AgentConfig
from agent.daemon import Agent
from dispatcher import db

EXECUTE = "/api/v1/jobs/execute"


@pytest.fixture
def live_api(app) -> Iterator[str]:
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join()


@pytest.fixture
def device(client, admin_headers) -> dict:
    response = client.post("/api/v1/devices", headers=admin_headers, json={
        "device_name": "bench-pi", "device_type": "raspberry-pi",
        "attributes": {"environment": "lab"}})
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def make_agent(live_api: str, device: dict, tmp_path: Path) -> Agent:
    return Agent(AgentConfig(
        server_url=live_api, device_uuid=str(device["uuid"]), token=device["device_token"],
        state_dir=str(tmp_path / "state"), handler_dir=str(tmp_path / "handlers"),
    ))


def execute(client, headers, settings, device: dict, document: dict) -> str:
    response = client.post(EXECUTE, headers=headers, json={
        "job_name": "agent integration", "job_document": document,
        "target_type": "device", "target_devices": [str(device["uuid"])]})
    assert response.status_code == 201, response.get_json()
    job_id = response.get_json()["job"]["job_id"]
    fan_out(job_id, settings)
    return job_id


def execution(client, headers, job_id: str) -> dict:
    response = client.get(f"/api/v1/jobs/executions/{job_id}", headers=headers)
    assert response.status_code == 200
    return response.get_json()


def device_transitions(job_id: str) -> list[str]:
    with db.pool().connection() as conn:
        rows = conn.execute(
            "SELECT details->>'to' AS status FROM job_events"
            " WHERE job_id = %s AND action = 'device_job.status_changed' ORDER BY id",
            (job_id,)).fetchall()
    return [row["status"] for row in rows]


def test_an_executed_job_runs_on_the_agent_and_the_api_shows_the_result(
    client, admin_headers, settings, live_api, device, tmp_path
):
    marker = tmp_path / "made-by-the-job"
    document = {"version": "1.0", "includeStdOut": True, "steps": [
        {"name": "Make file", "type": "runCommand", "input": {"command": f"touch,{marker}"}},
        {"name": "Say", "type": "runCommand", "input": {"command": "echo,all\\, done"}},
    ]}
    job_id = execute(client, admin_headers, settings, device, document)
    make_agent(live_api, device, tmp_path).poller.poll_once()
    assert marker.exists()
    detail = execution(client, admin_headers, job_id)
    assert detail["job"]["status"] == "SUCCEEDED"
    assert (detail["job"]["succeeded_devices"], detail["job"]["failed_devices"]) == (1, 0)
    row = detail["device_statuses"][0]
    assert (row["status"], row["exit_code"], row["stdout"]) == ("SUCCEEDED", 0, "all, done\n")
    assert device_transitions(job_id) == ["IN_PROGRESS", "IN_PROGRESS", "IN_PROGRESS",
                                          "SUCCEEDED"]


def test_a_failing_step_is_reported_with_its_exit_code_stderr_and_name(
    client, admin_headers, settings, live_api, device, tmp_path
):
    document = {"version": "1.0", "steps": [
        {"name": "Restart Service", "type": "runCommand",
         "input": {"command": "sh,-c,echo Permission denied >&2; exit 3"}},
    ]}
    job_id = execute(client, admin_headers, settings, device, document)
    make_agent(live_api, device, tmp_path).poller.poll_once()
    detail = execution(client, admin_headers, job_id)
    assert detail["job"]["status"] == "FAILED"
    row = detail["device_statuses"][0]
    assert (row["status"], row["exit_code"], row["failed_step"]) == ("FAILED", 3,
                                                                     "Restart Service")
    assert row["stderr"] == "Permission denied\n"


def test_a_handler_from_the_api_runs_and_one_with_a_tampered_sha256_is_refused(
    client, admin_headers, settings, live_api, device, tmp_path
):
    response = client.post("/api/v1/jobs/handlers", headers=admin_headers, json={
        "name": "greet", "script_type": "bash", "default_args": ["world"],
        "script_content": '#!/bin/bash\necho "hello $2"\n'})
    assert response.status_code == 201, response.get_json()
    document = {"version": "1.0", "includeStdOut": True, "steps": [
        {"action": {"name": "Greet", "type": "runHandler", "input": {"handler": "greet"}}}]}
    agent = make_agent(live_api, device, tmp_path)
    job_id = execute(client, admin_headers, settings, device, document)
    agent.poller.poll_once()
    row = execution(client, admin_headers, job_id)["device_statuses"][0]
    assert (row["status"], row["stdout"]) == ("SUCCEEDED", "hello world\n")

    with db.pool().connection() as conn:  # the stored hash no longer matches the script
        conn.execute("UPDATE job_handlers SET script_sha256 = %s WHERE name = 'greet'",
                     (hashlib.sha256(b"something else").hexdigest(),))
    job_id = execute(client, admin_headers, settings, device, document)
    agent.poller.poll_once()
    row = execution(client, admin_headers, job_id)["device_statuses"][0]
    assert row["status"] == "FAILED"
    assert "does not match its sha256" in row["reason"]
    assert row["failed_step"] == "Greet"


def test_an_invalid_document_stored_on_the_server_is_rejected_by_the_agent(
    client, admin_headers, settings, live_api, device, tmp_path
):
    job_id = execute(client, admin_headers, settings, device, {
        "version": "1.0", "steps": [{"name": "x", "type": "runCommand",
                                    "input": {"command": "true"}}]})
    with db.pool().connection() as conn:  # e.g. written by an older server version
        conn.execute("UPDATE job_executions SET job_document = %s WHERE job_id = %s",
                     (db.jsonb({"version": "1.0", "steps": "all of them"}), job_id))
    make_agent(live_api, device, tmp_path).poller.poll_once()
    row = execution(client, admin_headers, job_id)["device_statuses"][0]
    assert row["status"] == "REJECTED"
    assert "steps" in row["reason"]
    assert device_transitions(job_id) == ["REJECTED"]


def test_a_device_token_that_is_not_accepted_backs_off_without_crashing(
    live_api, device, tmp_path
):
    agent = make_agent(live_api, {**device, "device_token": uuid.uuid4().hex}, tmp_path)
    assert 0 < agent.poller.poll_once() <= 1
    assert 1 <= agent.poller.poll_once() <= 2
