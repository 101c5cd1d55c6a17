"""Signed and pinned jobs with real agent processes against the real API: a handler edited
after execute, a document altered in the database, an unsigned document and an agent holding
another key are all refused; what was approved runs."""

from __future__ import annotations

import base64
from dataclasses import replace

import pytest
from agent_processes import start_agent
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from test_agent_e2e import Fleet

from dispatcher import db
from dispatcher.signing import create_key_file

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
                     " touch $DEVICE_HOME/owned\"') WHERE job_id = %s", (altered,))
        conn.execute("UPDATE job_executions SET job_document_signature = NULL"
                     " WHERE job_id = %s", (unsigned,))

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
