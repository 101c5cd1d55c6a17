"""Signed and pinned jobs with real agent processes against the real API: a handler edited
after execute, a document altered in the database, an unsigned document and an agent holding
another key are all refused; what was approved runs. Whoever can write to the database cannot
make a signing agent run a server handler the job did not pin, change a pinned handler's
arguments or interpreter, or replay a signature into another job, onto another device or
after its window; a document holding numbers that jsonb rewrites runs as signed."""

from __future__ import annotations

import base64
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from agent_processes import start_agent
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from processes import wait_until
from test_agent_e2e import Fleet

from dispatcher import db
from dispatcher.signing import create_key_file, sign_job

pytestmark = pytest.mark.slow

HANDLER_V1 = '#!/bin/bash\ntouch "$DEVICE_HOME/handler-v1-ran"\n'
HANDLER_V2 = '#!/bin/bash\ntouch "$DEVICE_HOME/handler-v2-ran"\n'


def handler_job(name: str = "stamp") -> dict:
    return {"version": "1.0", "steps": [
        {"name": "stamp", "type": "runHandler", "input": {"handler": name}}]}


def touch_job(mark: str) -> dict:
    command = f"sh,-c,touch $DEVICE_HOME/{mark}"
    return {"version": "1.0", "steps": [
        {"name": mark, "type": "runCommand", "input": {"command": command}}]}


def stored(job_id: str) -> dict:
    with db.pool().connection() as conn:
        return conn.execute("SELECT job_document, job_document_signature FROM job_executions"
                            " WHERE job_id = %s", (job_id,)).fetchone()


def test_signed_pinned_jobs_run_only_as_approved(settings, server_processes, tmp_path):
    key_file = tmp_path / "signing.pem"
    public_key = create_key_file(key_file)
    fleet = Fleet(replace(settings, signing_key_file=str(key_file)), server_processes, tmp_path)
    trusting, doubting = fleet.register("trusting"), fleet.register("doubting")
    fleet.call("POST", "/jobs/handlers", {"name": "stamp", "script_type": "bash",
                                          "script_content": HANDLER_V1}, expect=201)

    edited_after = fleet.execute_on(trusting, handler_job())
    pin = stored(edited_after)["job_document"]["steps"][0]["input"]["sha256"]
    assert len(pin) == 64
    fleet.call("PUT", "/jobs/handlers/stamp", {"script_content": HANDLER_V2})
    altered = fleet.execute_on(trusting, touch_job("altered-ran"))
    unsigned = fleet.execute_on(trusting, touch_job("unsigned-ran"))
    approved = fleet.execute_on(trusting, handler_job())
    other_key = fleet.execute_on(doubting, touch_job("other-key-ran"))
    assert stored(approved)["job_document"]["steps"][0]["input"]["sha256"] != pin
    for job_id in (edited_after, altered, unsigned, approved, other_key):
        fleet.wait_for_status(job_id, "QUEUED", "IN_PROGRESS")
    with db.pool().connection() as conn:
        # Someone with write access to the database, but not the key, changes what runs.
        conn.execute("UPDATE job_executions SET job_document = jsonb_set(job_document,"
                     " '{steps,0,input,command}', '\"sh,-c,touch $DEVICE_HOME/altered-ran;"
                     " touch $DEVICE_HOME/owned\"'), signed_job = replace(signed_job,"
                     " 'altered-ran', 'altered-ran; touch $DEVICE_HOME/owned')"
                     " WHERE job_id = %s", (altered,))
        conn.execute("DELETE FROM job_device_signatures WHERE job_id = %s", (unsigned,))

    wrong = Ed25519PrivateKey.generate().public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    for device, key in ((trusting, public_key), (doubting, base64.b64encode(wrong).decode())):
        start_agent(fleet.processes, fleet.api.url, device, device["home"], 0.5,
                    signing_public_key=key)

    row = fleet.wait_for_status(edited_after, "FAILED")
    assert "not the version this job was executed with" in row["reason"]
    row = fleet.wait_for_status(altered, "REJECTED")
    assert "does not verify" in row["reason"]
    row = fleet.wait_for_status(unsigned, "REJECTED")
    assert "not signed" in row["reason"]
    assert fleet.wait_for_status(approved, "SUCCEEDED", "FAILED")["status"] == "SUCCEEDED"
    row = fleet.wait_for_status(other_key, "REJECTED")
    assert "does not verify" in row["reason"]
    home, other_home = trusting["home"], doubting["home"]
    assert (home / "handler-v2-ran").exists() and not (home / "handler-v1-ran").exists()
    for mark in ("altered-ran", "owned", "unsigned-ran"):
        assert not (home / mark).exists(), mark
    assert not (other_home / "other-key-ran").exists()


def device_status(job_id: str, device_uuid: str) -> dict | None:
    with db.pool().connection() as conn:
        return conn.execute("SELECT status, reason FROM device_job_status WHERE job_id = %s"
                            " AND device_uuid = %s", (job_id, device_uuid)).fetchone()


def wait_for_device(job_id: str, device: dict, *statuses: str) -> dict:
    return wait_until(lambda: (row := device_status(job_id, device["uuid"])) is not None
                      and row["status"] in statuses and row, 30.0, f"status in {statuses}")


def test_a_signing_agent_runs_nothing_the_signature_does_not_fix(
        settings, server_processes, tmp_path):
    key_file = tmp_path / "signing.pem"
    public_key = create_key_file(key_file)
    fleet = Fleet(replace(settings, signing_key_file=str(key_file)), server_processes, tmp_path)
    trusting, strict, bystander = (fleet.register(n) for n in ("trusting", "strict", "bystander"))

    # A handler meant for the devices' PATH, which the server does not hold at execute.
    executed = fleet.call("POST", "/jobs/execute", {
        "job_name": "local", "job_document": handler_job("sneaky"), "target_type": "device",
        "target_devices": [str(trusting["uuid"]), str(strict["uuid"])]}, expect=201)["job"]
    assert [(h["handler"], h["source"]) for h in executed["handler_steps"]] == [
        ("sneaky", "local")]
    local = executed["job_id"]
    # A pinned handler whose default arguments and interpreter change after execute.
    fleet.call("POST", "/jobs/handlers", {
        "name": "greet", "script_type": "bash", "default_args": ["approved"],
        "script_content": '#!/bin/bash\necho "$2" > "$DEVICE_HOME/greeted"\n'}, expect=201)
    greet = fleet.execute_on(trusting, handler_job("greet"))
    original = fleet.execute_on(trusting, {"version": "1.0", "steps": [{
        "name": "count", "type": "runCommand",
        "input": {"command": "sh,-c,echo run >> $DEVICE_HOME/original-runs"}}]})
    other_job = fleet.execute_on(trusting, touch_job("other-job-ran"))
    listed = fleet.execute_on(trusting, touch_job("listed-ran"))
    expired = fleet.execute_on(trusting, touch_job("expired-ran"))
    big = fleet.execute_on(trusting, {**touch_job("big-ran"), "_comment": {"big": 1e16}})
    for job_id in (local, greet, original, other_job, listed, expired, big):
        fleet.wait_for_status(job_id, "QUEUED")

    fleet.call("POST", "/jobs/handlers", {
        "name": "sneaky", "script_type": "bash",
        "script_content": '#!/bin/bash\ntouch "$DEVICE_HOME/sneaky-ran"\n'}, expect=201)
    fleet.call("PUT", "/jobs/handlers/greet", {"default_args": ["hijacked"],
                                               "script_type": "python"})
    eight_days_ago = datetime.now(UTC) - timedelta(days=8)
    old = sign_job(str(key_file), expired, stored(expired)["job_document"], eight_days_ago,
                   settings.signature_valid_s, None, False)
    assert old is not None
    with db.pool().connection() as conn:
        # Someone with write access to the database, but not the key, replays signatures.
        conn.execute("UPDATE job_executions v SET job_document = o.job_document,"
                     " signed_job = o.signed_job FROM job_executions o"
                     " WHERE v.job_id = %s AND o.job_id = %s", (other_job, original))
        conn.execute("UPDATE job_device_signatures v SET signature = o.signature"
                     " FROM job_device_signatures o WHERE v.job_id = %s AND o.job_id = %s",
                     (other_job, original))
        conn.execute("INSERT INTO device_job_status (job_id, device_uuid, released_at)"
                     " VALUES (%s, %s, now())", (listed, bystander["uuid"]))
        conn.execute("INSERT INTO job_device_signatures (job_id, device_uuid, signature)"
                     " SELECT job_id, %s, signature FROM job_device_signatures"
                     " WHERE job_id = %s", (bystander["uuid"], listed))
        conn.execute("UPDATE job_executions SET signed_job = %s, job_document_signature = %s"
                     " WHERE job_id = %s", (old.text, old.signature, expired))
        conn.execute("DELETE FROM job_device_signatures WHERE job_id = %s", (expired,))

    for device, extra in ((trusting, {}), (strict, {"allow_local_handlers": "false"}),
                          (bystander, {})):
        start_agent(fleet.processes, fleet.api.url, device, device["home"], 0.5,
                    signing_public_key=public_key, **extra)

    home = trusting["home"]
    row = wait_for_device(local, trusting, "SUCCEEDED", "FAILED")
    assert row["status"] == "FAILED" and "not the server" in row["reason"]
    row = wait_for_device(local, strict, "SUCCEEDED", "FAILED")
    assert row["status"] == "FAILED" and "does not pin it" in row["reason"]
    assert wait_for_device(greet, trusting, "SUCCEEDED", "FAILED")["status"] == "SUCCEEDED"
    assert (home / "greeted").read_text() == "approved\n"
    row = wait_for_device(other_job, trusting, "REJECTED", "SUCCEEDED", "FAILED")
    assert row["status"] == "REJECTED" and f"made for job {original}" in row["reason"]
    row = wait_for_device(listed, bystander, "REJECTED", "SUCCEEDED", "FAILED")
    assert row["status"] == "REJECTED" and "does not verify for this device" in row["reason"]
    row = wait_for_device(expired, trusting, "REJECTED", "SUCCEEDED", "FAILED")
    assert row["status"] == "REJECTED" and "expired at" in row["reason"]
    assert wait_for_device(big, trusting, "REJECTED", "SUCCEEDED")["status"] == "SUCCEEDED"
    assert wait_for_device(original, trusting, "SUCCEEDED")
    assert wait_for_device(listed, trusting, "SUCCEEDED")
    assert (home / "original-runs").read_text() == "run\n"
    assert (home / "listed-ran").exists() and (home / "big-ran").exists()
    for mark in ("other-job-ran", "expired-ran", "sneaky-ran"):
        assert not (home / mark).exists(), mark
    assert not (strict["home"] / "sneaky-ran").exists()
    assert not (bystander["home"] / "listed-ran").exists()
