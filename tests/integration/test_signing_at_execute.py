"""At execute the server pins handlers (content, interpreter, effective arguments), binds the
signature to the execution, its window and each device of a device list, and stores the very
text it signed; the poll delivers that text, the execute answer and the portal say which
handler steps are pinned and which are local, and the runs of a recurring job carry their
parent's signature. A signing key others can read is refused."""

from __future__ import annotations

import json
import os
import re
import time
from dataclasses import replace
from datetime import timedelta

import pytest
from job_rows import fan_out, job_row, next_url, register_fleet
from suite_constants import TEST_ADMIN_TOKEN
from test_portal import sign_in
from test_unsafe_start import run_dispatcher

from agent.signatures import decode_public_key, signed_document
from api.app import create_app
from dispatcher import db
from dispatcher.catalog.handlers import script_sha256
from dispatcher.errors import Misconfigured
from dispatcher.jobs.create import create_execution
from dispatcher.policies import recurring
from dispatcher.sender import deliver
from dispatcher.signing import create_key_file, load_key
from schemas.document_signing import read_signed_job
from schemas.policies import ExecutionPolicies

SCRIPT = "#!/bin/bash\necho hi\n"
DOCUMENT = {"version": "1.0", "steps": [
    {"name": "h", "type": "runHandler", "input": {"handler": "stamp"}},
    {"name": "local", "type": "runHandler", "input": {"handler": "only-on-devices"}},
    {"name": "given", "type": "runHandler", "input": {"handler": "stamp", "args": ["mine"],
                                                      "scriptType": "node"}}],
    "finalStep": {"name": "f", "type": "runHandler", "input": {"handler": "stamp"}}}


@pytest.fixture
def signing(settings, tmp_path):
    key_file = tmp_path / "signing.pem"
    public_key = create_key_file(key_file)
    return replace(settings, signing_key_file=str(key_file)), decode_public_key(public_key)


def execute(client, headers, document: dict, devices: list) -> dict:
    executed = client.post("/api/v1/jobs/execute", headers=headers, json={
        "job_name": "pinned", "job_document": document, "target_type": "device",
        "target_devices": [str(device.uuid) for device in devices]})
    assert executed.status_code == 201, executed.get_json()
    return executed.get_json()["job"]


def test_execute_pins_content_interpreter_and_arguments_and_signs_them_for_this_job(
        signing, admin_headers):
    settings, public_key = signing
    client = create_app(settings).test_client()
    client.post("/api/v1/jobs/handlers", headers=admin_headers, json={
        "name": "stamp", "script_type": "bash", "script_content": SCRIPT,
        "default_args": ["--as-approved"]})
    device, other = register_fleet(2)
    job = execute(client, admin_headers, DOCUMENT, [device])
    assert [(s["step"], s["source"], s["args"]) for s in job["handler_steps"]] == [
        ("h", "pinned", ["--as-approved"]), ("local", "local", []),
        ("given", "pinned", ["mine"]), ("f", "pinned", ["--as-approved"])]
    assert job["handler_steps"][0]["sha256"] == script_sha256(SCRIPT)
    row = job_row(job["job_id"])
    pinned = row["job_document"]["steps"][0]["input"]
    assert pinned == {"handler": "stamp", "sha256": script_sha256(SCRIPT), "scriptType": "bash",
                      "args": ["--as-approved"]}
    assert row["job_document"]["steps"][2]["input"]["scriptType"] == "bash"
    assert row["job_document"]["steps"][1]["input"] == {"handler": "only-on-devices", "args": []}
    signed = read_signed_job(row["signed_job"])
    assert signed.job_id == str(job["job_id"]) and signed.per_device
    assert signed.document == row["job_document"]
    assert signed.not_after - time.time() == pytest.approx(settings.signature_valid_s, abs=60)

    fan_out(row["job_id"], settings)
    polled = client.get(next_url(device), headers=device.headers).get_json()
    assert polled["signedJob"] == row["signed_job"]
    assert row["job_document_signature"] is None  # a device list's are one per device
    with db.pool().connection() as conn:
        own = conn.execute("SELECT device_uuid, signature FROM job_device_signatures"
                           " WHERE job_id = %s", (job["job_id"],)).fetchall()
    assert own == [{"device_uuid": device.uuid, "signature": polled["jobDocumentSignature"]}]

    def check(text: str, job_id: str, device_uuid) -> dict:
        return signed_document(text, polled["jobDocumentSignature"], public_key, job_id, None,
                               str(device_uuid), time.time())

    assert check(polled["signedJob"], polled["jobId"], device.uuid) == row["job_document"]
    altered = polled["signedJob"].replace("--as-approved", "--as-altered")
    for text, job_id, device_uuid, reason in (
            (altered, polled["jobId"], device.uuid, "does not verify"),
            (polled["signedJob"], str(other.uuid), device.uuid, "made for job"),
            (polled["signedJob"], polled["jobId"], other.uuid,
             "does not verify for this device")):
        with pytest.raises(Exception, match=reason):
            check(text, job_id, device_uuid)

    detail = client.get(f"/api/v1/jobs/executions/{job['job_id']}", headers=admin_headers)
    shown = detail.get_json()["job"]
    assert shown["handler_steps"] == job["handler_steps"]
    assert shown["signature_not_after"] is not None


def test_what_is_signed_is_what_the_device_receives_even_for_numbers_jsonb_rewrites(
        signing, admin_headers):
    settings, public_key = signing
    client = create_app(settings).test_client()
    device = register_fleet(1)[0]
    document = {"version": "1.0", "_comment": {"big": 1e16, "tiny": 1e-7, "exact": 0.1},
                "steps": [{"name": "s", "type": "runCommand", "input": {"command": "true"}}]}
    job = execute(client, admin_headers, document, [device])
    fan_out(job["job_id"], settings)
    polled = client.get(next_url(device), headers=device.headers).get_json()
    ran = signed_document(polled["signedJob"], polled["jobDocumentSignature"], public_key,
                          polled["jobId"], None, str(device.uuid), time.time())
    assert ran["_comment"] == {"big": 1e16, "tiny": 1e-7, "exact": 0.1}
    assert json.dumps(polled["jobDocument"]) != json.dumps(ran)  # jsonb did rewrite its copy


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
    assert polled["jobDocumentSignature"] is None and polled["signedJob"] is None


@pytest.mark.parametrize("target_type", ["all", "device"])
def test_the_runs_of_a_recurring_job_carry_its_signature(signing, target_type):
    settings, public_key = signing
    db.configure(settings)
    device = register_fleet(1)[0]
    targets = {"target_devices": [device.uuid]} if target_type == "device" else {}
    body = {"job_name": "nightly", "target_type": target_type, **targets,
            "job_document": {"version": "1.0", "steps": [
                {"name": "s", "type": "runCommand", "input": {"command": "true"}}]},
            **ExecutionPolicies().load({"execution_type": "recurring",
                                        "schedule": {"cron": "* * * * * */5"}})}
    parent = deliver(create_execution(body, "admin:test", settings), settings)
    first = job_row(parent["job_id"])["next_run_at"]
    assert len(recurring.fire_due_runs(first + timedelta(seconds=1)).fan_outs) == 1
    run = recurring.list_runs(parent["job_id"], 5, 0)["runs"][0]
    fan_out(run["job_id"], settings)
    polled = create_app(settings).test_client().get(
        next_url(device), headers=device.headers).get_json()
    assert polled["jobId"] == str(run["job_id"])
    assert polled["parentJobId"] == str(parent["job_id"])
    assert signed_document(polled["signedJob"], polled["jobDocumentSignature"], public_key,
                           polled["jobId"], polled["parentJobId"], str(device.uuid),
                           time.time())["steps"][0]["input"]["command"] == "true"


def test_the_portal_shows_which_handler_steps_are_pinned_and_which_are_local(
        signing, admin_headers):
    settings, _ = signing
    client = create_app(settings).test_client()
    client.post("/api/v1/jobs/handlers", headers=admin_headers, json={
        "name": "stamp", "script_type": "bash", "script_content": SCRIPT})
    job = execute(client, admin_headers, DOCUMENT, register_fleet(1))
    sign_in(client, TEST_ADMIN_TOKEN)
    page = client.get(f"/portal/executions/{job['job_id']}").get_data(as_text=True)
    assert 'id="job-signature">yes, valid on devices from' in page
    rows = dict(re.findall(r'<tr data-step="([^"]+)">.*?class="handler-source">(.*?)</td>',
                           page, re.DOTALL))
    assert rows["h"].startswith("pinned: bash, sha256")
    assert rows["local"] == ("local: not pinned, runs from the device and is never fetched "
                             "from the server")


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o644])
def test_a_signing_key_others_can_read_is_refused(tmp_path, mode):
    key_file = tmp_path / f"signing-{mode:o}.pem"
    create_key_file(key_file)
    os.chmod(key_file, mode)
    with pytest.raises(Misconfigured, match=f"is mode {mode:o}: group and others must have no"):
        load_key(str(key_file))
    os.chmod(key_file, 0o600)
    assert load_key(str(key_file)) is not None


@pytest.mark.parametrize(("mode", "valid_s", "refusal"), [
    (0o644, "604800", "is mode 644: group and others must have no access"),
    (0o600, "0", "SIGNATURE_VALID_S must be at least 1 second"),
])
def test_dispatcher_serve_refuses_signing_settings_that_cannot_sign(
        tmp_path, mode, valid_s, refusal):
    key_file = tmp_path / "signing.pem"
    create_key_file(key_file)
    os.chmod(key_file, mode)
    result = run_dispatcher(["serve", "--bind", "127.0.0.1:0"], SIGNING_KEY_FILE=str(key_file),
                            SIGNATURE_VALID_S=valid_s)
    assert result.returncode == 1, result.stderr
    assert refusal in result.stderr


def test_an_execution_whose_signed_text_was_garbled_shows_as_unsigned(signing, admin_headers):
    settings, _ = signing
    client = create_app(settings).test_client()
    job = execute(client, admin_headers, DOCUMENT, register_fleet(1))
    with db.pool().connection() as conn:
        conn.execute("UPDATE job_executions SET signed_job = repeat('[', 100000)"
                     " WHERE job_id = %s", (job["job_id"],))
    detail = client.get(f"/api/v1/jobs/executions/{job['job_id']}", headers=admin_headers)
    assert detail.status_code == 200
    assert detail.get_json()["job"]["signature_not_after"] is None
