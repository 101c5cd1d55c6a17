"""At execute the server pins handlers and signs the document; the poll delivers both, and the
runs of a recurring job carry their parent's signature."""

from __future__ import annotations

import base64
from dataclasses import replace
from datetime import timedelta

import pytest
from job_rows import fan_out, job_row, next_url, register_fleet

from agent.signatures import decode_public_key, signature_problem
from api.app import create_app
from dispatcher import db
from dispatcher.catalog.handlers import script_sha256
from dispatcher.jobs.create import create_execution
from dispatcher.policies import recurring
from dispatcher.sender import deliver
from dispatcher.signing import create_key_file
from schemas.policies import ExecutionPolicies

SCRIPT = "#!/bin/bash\necho hi\n"
DOCUMENT = {"version": "1.0", "steps": [
    {"name": "h", "type": "runHandler", "input": {"handler": "stamp"}},
    {"name": "local", "type": "runHandler", "input": {"handler": "only-on-devices"}}],
    "finalStep": {"name": "f", "type": "runHandler", "input": {"handler": "stamp"}}}


@pytest.fixture
def signing(settings, tmp_path):
    key_file = tmp_path / "signing.pem"
    public_key = create_key_file(key_file)
    return replace(settings, signing_key_file=str(key_file)), decode_public_key(public_key)


def test_execute_pins_handlers_and_the_poll_delivers_a_valid_signature(signing, admin_headers):
    settings, public_key = signing
    client = create_app(settings).test_client()
    client.post("/api/v1/jobs/handlers", json={"name": "stamp", "script_type": "bash",
                                               "script_content": SCRIPT}, headers=admin_headers)
    device = register_fleet(1)[0]
    executed = client.post("/api/v1/jobs/execute", headers=admin_headers, json={
        "job_name": "pinned", "job_document": DOCUMENT, "target_type": "device",
        "target_devices": [str(device.uuid)]})
    assert executed.status_code == 201, executed.get_json()
    row = job_row(executed.get_json()["job"]["job_id"])
    pin = row["job_document"]["steps"][0]["input"]["sha256"]
    assert pin == row["job_document"]["finalStep"]["input"]["sha256"]
    assert "sha256" not in row["job_document"]["steps"][1]["input"]
    assert pin == script_sha256(SCRIPT)
    fan_out(row["job_id"], settings)
    polled = client.get(next_url(device), headers=device.headers).get_json()
    assert polled["jobDocumentSignature"] == row["job_document_signature"]
    assert signature_problem(polled["jobDocument"], polled["jobDocumentSignature"],
                             public_key) is None
    altered = {**polled["jobDocument"], "includeStdOut": True}
    assert signature_problem(altered, polled["jobDocumentSignature"], public_key) is not None


def test_without_a_key_the_poll_says_the_document_is_unsigned(client, admin_headers, settings):
    device = register_fleet(1)[0]
    executed = client.post("/api/v1/jobs/execute", headers=admin_headers, json={
        "job_name": "plain", "target_type": "all", "job_document": {
            "version": "1.0", "steps": [{"name": "s", "type": "runCommand",
                                         "input": {"command": "true"}}]}})
    job_id = executed.get_json()["job"]["job_id"]
    fan_out(job_id, settings)
    polled = client.get(next_url(device), headers=device.headers).get_json()
    assert polled["jobId"] == str(job_id)
    assert polled["jobDocumentSignature"] is None


def test_the_runs_of_a_recurring_job_carry_its_signature(signing):
    settings, public_key = signing
    db.configure(settings)
    register_fleet(1)
    body = {"job_name": "nightly", "target_type": "all",
            "job_document": {"version": "1.0", "steps": [
                {"name": "s", "type": "runCommand", "input": {"command": "true"}}]},
            **ExecutionPolicies().load({"execution_type": "recurring",
                                        "schedule": {"cron": "* * * * * */5"}})}
    parent = deliver(create_execution(body, "admin:test", settings), settings)
    first = job_row(parent["job_id"])["next_run_at"]
    assert len(recurring.fire_due_runs(first + timedelta(seconds=1)).fan_outs) == 1
    run = recurring.list_runs(parent["job_id"], 5, 0)["runs"][0]
    child = job_row(run["job_id"])
    assert child["job_document_signature"] == job_row(parent["job_id"])["job_document_signature"]
    assert signature_problem(child["job_document"], child["job_document_signature"],
                             public_key) is None
    assert base64.b64decode(child["job_document_signature"])
