"""Signed job documents: the agent's pure-Python Ed25519 against ``cryptography``'s
signatures, and the agent running only documents signed with its configured key."""

from __future__ import annotations

import base64
import hashlib
import os
import threading

import pytest
from agent_fakes import DEVICE_UUID, TOKEN, fake_server
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent import ed25519
from agent.config import AgentConfig
from agent.daemon import Agent
from agent.engine import FAILED, SUCCEEDED, EngineSettings, JobEngine
from agent.handlers import HandlerStore
from agent.server_api import DeviceApi
from schemas.document_signing import signed_message


def raw_public(key: Ed25519PrivateKey) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.Raw,
                                         serialization.PublicFormat.Raw)


def sign(key: Ed25519PrivateKey, document: dict) -> str:
    return base64.b64encode(key.sign(signed_message(document))).decode()


@pytest.mark.parametrize("size", [0, 1, 31, 64, 1000, 40_000])
def test_verify_accepts_cryptographys_signatures_and_nothing_else(size):
    key, other = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    message = os.urandom(size)
    signature = key.sign(message)
    assert ed25519.verify(raw_public(key), message, signature)
    assert not ed25519.verify(raw_public(other), message, signature)
    assert not ed25519.verify(raw_public(key), message + b"x", signature)
    for i in (0, 31, 32, 63):
        bent = bytearray(signature)
        bent[i] ^= 0x01
        assert not ed25519.verify(raw_public(key), message, bytes(bent))
    assert not ed25519.verify(raw_public(key), message, signature[:63])
    assert not ed25519.verify(b"\xff" * 32, message, signature)


def test_verify_refuses_a_signature_whose_s_is_not_reduced():
    key = Ed25519PrivateKey.generate()
    signature = key.sign(b"m")
    s = int.from_bytes(signature[32:], "little") + ed25519.L
    if s < 2**256:
        assert not ed25519.verify(raw_public(key), b"m", signature[:32] + s.to_bytes(32, "little"))


def touch(path) -> dict:
    return {"version": "1.0", "includeStdOut": False,
            "steps": [{"name": "touch", "type": "runCommand", "input": {"command": f"touch,{path}"},
                       "allowStdErr": False, "ignoreStepFailure": False}]}


@pytest.fixture
def fake():
    with fake_server() as server:
        yield server


def agent_with_key(fake, tmp_path, key: Ed25519PrivateKey) -> Agent:
    return Agent(AgentConfig(
        server_url=fake.url, device_uuid=DEVICE_UUID, token=TOKEN,
        state_dir=str(tmp_path / "state"), handler_dir=str(tmp_path / "handlers"),
        signing_public_key=base64.b64encode(raw_public(key)).decode()))


def test_an_agent_with_a_key_runs_signed_documents_and_rejects_every_other(fake, tmp_path):
    key, other = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    marks = {name: tmp_path / name for name in ("signed", "unsigned", "tampered", "wrong-key",
                                                  "garbled")}
    signed = fake.add_job(touch(marks["signed"]), signature=sign(key, touch(marks["signed"])))
    unsigned = fake.add_job(touch(marks["unsigned"]))
    tampered = fake.add_job(touch(marks["tampered"]), signature=sign(key, touch(marks["signed"])))
    wrong_key = fake.add_job(touch(marks["wrong-key"]),
                             signature=sign(other, touch(marks["wrong-key"])))
    garbled = fake.add_job(touch(marks["garbled"]), signature="not base64!")
    agent = agent_with_key(fake, tmp_path, key)
    for _ in range(6):
        agent.poller.poll_once()
    assert fake.statuses(signed)[-1] == SUCCEEDED and marks["signed"].exists()
    expected = {unsigned: "not signed", tampered: "does not verify", wrong_key: "does not verify",
                garbled: "not readable"}
    for job_id, reason in expected.items():
        assert fake.statuses(job_id) == ["REJECTED"], job_id
        assert reason in fake.reports_for(job_id)[0]["reason"]
    for name in ("unsigned", "tampered", "wrong-key", "garbled"):
        assert not marks[name].exists()


def test_an_agent_without_a_key_runs_unsigned_documents(fake, tmp_path):
    job = fake.add_job(touch(tmp_path / "ran"))
    Agent(AgentConfig(server_url=fake.url, device_uuid=DEVICE_UUID, token=TOKEN,
                      state_dir=str(tmp_path / "state"),
                      handler_dir=str(tmp_path / "handlers"))).poller.poll_once()
    assert fake.statuses(job)[-1] == SUCCEEDED


SCRIPT = "#!/bin/bash\necho pinned\n"


def run_pinned(fake, tmp_path, content: str, pin: str) -> tuple[str, str | None]:
    fake.handlers["h"] = {"name": "h", "script_type": "bash", "script_content": content,
                          "script_sha256": hashlib.sha256(content.encode()).hexdigest(),
                          "permissions": "700", "default_args": []}
    store = HandlerStore(tmp_path / "handlers", tmp_path / "cache",
                         DeviceApi(fake.url, DEVICE_UUID, TOKEN))
    document = {"version": "1.0", "includeStdOut": True, "steps": [
        {"name": "h", "type": "runHandler", "input": {"handler": "h", "sha256": pin}}]}
    result = JobEngine(EngineSettings(), store).run_document(document, threading.Event())
    return result.status, result.reason


def test_a_pinned_handler_runs_only_with_the_pinned_content(fake, tmp_path):
    pin = hashlib.sha256(SCRIPT.encode()).hexdigest()
    assert run_pinned(fake, tmp_path, SCRIPT, pin)[0] == SUCCEEDED
    status, reason = run_pinned(fake, tmp_path, SCRIPT + "rm -rf /tmp/x\n", pin)
    assert status == FAILED
    assert "not the version this job was executed with" in reason
