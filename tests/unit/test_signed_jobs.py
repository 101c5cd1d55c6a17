"""Signed jobs: the agent's pure-Python Ed25519 against ``cryptography``'s signatures, and the
agent running only jobs signed with its configured key, for this execution, this device and
this moment, as signed (pinned handlers with their interpreter and arguments; nothing fetched
that the signature does not pin)."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import threading
import time
import uuid

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
from schemas.document_signing import SignedJob, signed_job_text, signed_message


def raw_public(key: Ed25519PrivateKey) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.Raw,
                                         serialization.PublicFormat.Raw)


def sign(key: Ed25519PrivateKey, job_id: str, document: dict, device: str | None = None,
         window_s: tuple[int, int] = (-60, 3600), recurring: bool = False) -> dict:
    """What the server stores for a signed execution of ``job_id`` (for ``device`` alone when
    given, as for a device-list target): add_job's keywords."""
    now = int(time.time())
    text = signed_job_text(SignedJob(job_id, now + window_s[0], now + window_s[1],
                                     device is not None, recurring, document))
    signature = base64.b64encode(key.sign(signed_message(text, device))).decode()
    return {"job_id": job_id, "signed_job": text, "signature": signature}


class SkewedTime:
    """The ``time`` module as seen on a device whose wall clock is ``offset_s`` off."""

    def __init__(self, offset_s: float) -> None:
        self.offset_s = offset_s

    def __getattr__(self, name: str) -> object:
        return getattr(time, name)

    def time(self) -> float:
        return time.time() + self.offset_s


def new_id() -> str:
    return str(uuid.uuid4())


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


def agent_with_key(fake, tmp_path, key: Ed25519PrivateKey, **settings) -> Agent:
    return Agent(AgentConfig(
        server_url=fake.url, device_uuid=DEVICE_UUID, token=TOKEN,
        state_dir=str(tmp_path / "state"), handler_dir=str(tmp_path / "handlers"),
        signing_public_key=base64.b64encode(raw_public(key)).decode(), **settings))


def poll_all(agent: Agent, fake) -> None:
    for _ in range(len(fake.jobs) + 1):
        agent.poller.poll_once()


def test_an_agent_with_a_key_runs_signed_jobs_and_rejects_every_other(fake, tmp_path):
    key, other = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    marks = {name: tmp_path / name for name in ("signed", "unsigned", "tampered", "wrong-key",
                                                  "garbled", "nested")}
    signed = fake.add_job(touch(marks["signed"]), **sign(key, new_id(), touch(marks["signed"])))
    unsigned = fake.add_job(touch(marks["unsigned"]))
    tampered_fields = sign(key, new_id(), touch(marks["signed"]))
    tampered_fields["signed_job"] = tampered_fields["signed_job"].replace("signed", "tampered")
    tampered = fake.add_job(touch(marks["tampered"]), **tampered_fields)
    wrong_key = fake.add_job(touch(marks["wrong-key"]),
                             **sign(other, new_id(), touch(marks["wrong-key"])))
    garbled = fake.add_job(touch(marks["garbled"]),
                           **{**sign(key, new_id(), touch(marks["garbled"])),
                              "signature": "not base64!"})
    nested = fake.add_job(touch(marks["nested"]),
                          **{**sign(key, new_id(), touch(marks["nested"])),
                             "signed_job": "[" * 100_000 + "]" * 100_000})
    poll_all(agent_with_key(fake, tmp_path, key), fake)
    assert fake.statuses(signed)[-1] == SUCCEEDED and marks["signed"].exists()
    expected = {unsigned: "not signed", tampered: "does not verify", wrong_key: "does not verify",
                garbled: "not readable", nested: "not readable"}
    for job_id, reason in expected.items():
        assert fake.statuses(job_id) == ["REJECTED"], job_id
        assert reason in fake.reports_for(job_id)[0]["reason"]
    for name in ("unsigned", "tampered", "wrong-key", "garbled", "nested"):
        assert not marks[name].exists()


def test_the_signed_document_runs_not_the_servers_copy_of_it(fake, tmp_path):
    key = Ed25519PrivateKey.generate()
    approved, swapped = tmp_path / "approved", tmp_path / "swapped"
    job = fake.add_job(touch(swapped), **sign(key, new_id(), touch(approved)))
    poll_all(agent_with_key(fake, tmp_path, key), fake)
    assert fake.statuses(job)[-1] == SUCCEEDED
    assert approved.exists() and not swapped.exists()


def test_a_signature_holds_for_its_own_execution_device_and_window_only(fake, tmp_path):
    key = Ed25519PrivateKey.generate()
    marks = {name: tmp_path / name for name in (
        "own", "listed", "other-job", "other-device", "expired", "not-yet", "run", "stray-run")}
    parent = new_id()
    cases = {
        "own": sign(key, new_id(), touch(marks["own"])),
        "listed": sign(key, new_id(), touch(marks["listed"]), device=DEVICE_UUID),
        "other-job": {**sign(key, new_id(), touch(marks["other-job"])), "job_id": new_id()},
        "other-device": sign(key, new_id(), touch(marks["other-device"]), device=new_id()),
        "expired": sign(key, new_id(), touch(marks["expired"]), window_s=(-7200, -3600)),
        "not-yet": sign(key, new_id(), touch(marks["not-yet"]), window_s=(3600, 7200)),
        "run": {**sign(key, parent, touch(marks["run"]), recurring=True), "job_id": new_id(),
                "parent_job_id": parent},
        "stray-run": {**sign(key, parent, touch(marks["stray-run"])), "job_id": new_id(),
                      "parent_job_id": parent},
    }
    jobs = {name: fake.add_job(touch(marks[name]), **fields) for name, fields in cases.items()}
    poll_all(agent_with_key(fake, tmp_path, key), fake)
    for name in ("own", "listed", "run"):
        assert fake.statuses(jobs[name])[-1] == SUCCEEDED, name
        assert marks[name].exists()
    expected = {"other-job": "made for job", "other-device": "does not verify for this device",
                "expired": "expired at", "not-yet": "not valid before",
                "stray-run": "made for job"}
    for name, reason in expected.items():
        assert fake.statuses(jobs[name]) == ["REJECTED"], name
        assert reason in fake.reports_for(jobs[name])[0]["reason"], name
        assert not marks[name].exists(), name


@pytest.mark.parametrize(("offset_s", "refusal", "skew"), [
    (3 * 3600, "expired at", "this device's clock is 3 h 0 min ahead of the server's"),
    (-3 * 3600, "not valid before", "this device's clock is 3 h 0 min behind the server's"),
])
def test_a_signature_refused_by_a_clock_far_off_says_the_clock_looks_off(
        fake, tmp_path, monkeypatch, offset_s, refusal, skew):
    """The window is checked by the device's clock, never the server's, but the reason names
    how far the device's clock is from the server's (the Date header of its answers)."""
    key = Ed25519PrivateKey.generate()
    job = fake.add_job(touch(tmp_path / "ran"),
                       **sign(key, new_id(), touch(tmp_path / "ran"), window_s=(-300, 600)))
    # The agent's clock only: the fake server's Date header keeps the true time.
    for module in ("agent.runner", "agent.server_api"):
        monkeypatch.setattr(f"{module}.time", SkewedTime(offset_s))
    poll_all(agent_with_key(fake, tmp_path, key), fake)
    assert fake.statuses(job) == ["REJECTED"]
    reason = fake.reports_for(job)[0]["reason"]
    assert refusal in reason and skew in reason and "NTP" in reason, reason
    assert not (tmp_path / "ran").exists()


def test_a_signature_outside_its_window_by_a_clock_that_agrees_names_no_skew(fake, tmp_path):
    key = Ed25519PrivateKey.generate()
    job = fake.add_job(touch(tmp_path / "ran"),
                       **sign(key, new_id(), touch(tmp_path / "ran"), window_s=(-7200, -3600)))
    poll_all(agent_with_key(fake, tmp_path, key), fake)
    reason = fake.reports_for(job)[0]["reason"]
    assert "expired at" in reason and "clock is" not in reason, reason


def test_a_document_with_a_large_number_runs_as_signed(fake, tmp_path):
    key = Ed25519PrivateKey.generate()
    document = {**touch(tmp_path / "ran"), "_comment": {"big": 1e16, "small": 1e-7}}
    job = fake.add_job(json.loads(json.dumps(document)), **sign(key, new_id(), document))
    poll_all(agent_with_key(fake, tmp_path, key), fake)
    assert fake.statuses(job)[-1] == SUCCEEDED and (tmp_path / "ran").exists()


def test_an_agent_without_a_key_runs_unsigned_documents(fake, tmp_path):
    job = fake.add_job(touch(tmp_path / "ran"))
    Agent(AgentConfig(server_url=fake.url, device_uuid=DEVICE_UUID, token=TOKEN,
                      state_dir=str(tmp_path / "state"),
                      handler_dir=str(tmp_path / "handlers"))).poller.poll_once()
    assert fake.statuses(job)[-1] == SUCCEEDED


SCRIPT = "#!/bin/bash\necho pinned\n"


def server_handler(fake, name: str, content: str, script_type: str = "bash",
                   default_args: list[str] | None = None) -> str:
    digest = hashlib.sha256(content.encode()).hexdigest()
    fake.handlers[name] = {"name": name, "script_type": script_type, "script_content": content,
                           "script_sha256": digest, "permissions": "700",
                           "default_args": default_args or []}
    return digest


def run_pinned(fake, tmp_path, content: str, pin: str) -> tuple[str, str | None]:
    server_handler(fake, "h", content)
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


def test_a_handler_pinned_at_execute_runs_with_its_pinned_interpreter_and_arguments(
        fake, tmp_path):
    content = '#!/bin/bash\necho "args=[$2 $3]"\n'
    pin = server_handler(fake, "h", content, script_type="python",
                         default_args=["changed", "later"])
    store = HandlerStore(tmp_path / "handlers", tmp_path / "cache",
                         DeviceApi(fake.url, DEVICE_UUID, TOKEN))
    document = {"version": "1.0", "includeStdOut": True, "steps": [
        {"name": "h", "type": "runHandler", "input": {
            "handler": "h", "sha256": pin, "scriptType": "bash", "args": ["as", "signed"]}}]}
    result = JobEngine(EngineSettings(), store).run_document(document, threading.Event())
    assert result.status == SUCCEEDED, result.reason
    assert result.stdout == "args=[as signed]\n"


@pytest.mark.parametrize("allow_local", [True, False])
def test_a_signing_agent_never_fetches_a_handler_the_signature_does_not_pin(
        fake, tmp_path, allow_local):
    key = Ed25519PrivateKey.generate()
    mark = tmp_path / "server-content-ran"
    server_handler(fake, "sneaky", f"#!/bin/bash\ntouch {mark}\n")
    document = {"version": "1.0", "steps": [
        {"name": "s", "type": "runHandler", "input": {"handler": "sneaky"}}]}
    job = fake.add_job(document, **sign(key, new_id(), document))
    poll_all(agent_with_key(fake, tmp_path, key, allow_local_handlers=allow_local), fake)
    assert fake.statuses(job)[-1] == FAILED
    reason = fake.reports_for(job)[-1]["reason"]
    assert "does not pin it" in reason
    assert not mark.exists()
