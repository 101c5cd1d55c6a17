"""Job documents in the AWS IoT Device Client's published shapes, run by real ``jobs-agent``
processes against the real API and worker, with the standard handler library installed by a
real ``dispatcher migrate``; and reboot jobs that finish after the agent comes back."""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from agent_processes import start_agent
from processes import wait_until
from test_agent_e2e import Fleet

pytestmark = pytest.mark.slow


def install_standard_library(settings) -> None:
    """``dispatcher migrate`` on the test's database, as an operator runs it."""
    dispatcher = Path(sys.executable).parent / "dispatcher"
    result = subprocess.run([str(dispatcher), "migrate"], capture_output=True, text=True,
                            timeout=120, env={**os.environ, "DATABASE_URL": settings.database_url})
    assert result.returncode == 0, result.stderr
    assert "standard handlers created: download-file" in result.stdout


@pytest.fixture
def web(tmp_path: Path):
    """A local HTTP server for the files in tmp_path/www."""
    root = tmp_path / "www"
    root.mkdir()
    handler = functools.partial(SimpleHTTPRequestHandler, directory=str(root))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield root, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def run_on(fleet: Fleet, device: dict, document: dict) -> dict:
    job_id = fleet.execute_on(device, document)
    row = fleet.wait_for_status(job_id, "SUCCEEDED", "FAILED", "REJECTED", timeout_s=60)
    row["job_document"] = fleet.detail(job_id)["job"]["job_document"]
    return row


def test_device_client_sample_shapes_run_with_the_device_client_s_results(
    settings, server_processes, tmp_path, web
):
    install_standard_library(settings)
    root, url = web
    (root / "release.tar.gz").write_bytes(b"not really a tarball\n")
    fleet = Fleet(settings, server_processes, tmp_path)
    device = fleet.register("pi-aws")
    home = device["home"]
    fleet.start_agent(device)

    # sample-job-docs/echo.json (with includeStdOut, to see the result): a handler without a
    # path is an executable on PATH, given the runAsUser ("" here) before its args.
    echo = run_on(fleet, device, {
        "_comment": "This sample JSON file can be used for running the echo command.",
        "version": "1.0", "includeStdOut": "true",
        "steps": [{"action": {"name": "Echo Messages", "type": "runHandler",
                              "input": {"handler": "echo", "args": ["Hello IoT World!"]}}}],
    })
    assert (echo["status"], echo["stdout"]) == ("SUCCEEDED", " Hello IoT World!\n"), echo
    assert echo["job_document"]["_comment"].startswith("This sample JSON")

    # sample-job-docs/run-shellcommand.json, with conditions (kept, ignored).
    new_dir = home / "newDir"
    mkdir = run_on(fleet, device, {
        "_comment": "Creates a new directory.", "version": "1.0",
        "conditions": [{"key": "operatingSystem", "value": ["linux"], "type": "stringEqual"}],
        "steps": [{"action": {"name": "Create New Directory", "type": "runCommand",
                              "input": {"command": f"mkdir,{new_dir}"}, "runAsUser": "root"}}],
    })
    assert mkdir["status"] == "SUCCEEDED", mkdir
    assert new_dir.is_dir()
    assert mkdir["job_document"]["conditions"][0]["key"] == "operatingSystem"

    # sample-job-docs/download-file.json: the old schema, "download-file.sh" in the default
    # path, answered by the server's standard download-file handler.
    target = home / "aws-iot-device-client.tar.gz"
    old = run_on(fleet, device, {
        "_comment": "Downloads a file.", "operation": "download-file.sh",
        "args": [f"{url}/release.tar.gz", str(target)], "path": "default",
    })
    assert old["status"] == "SUCCEEDED", old
    assert target.read_bytes() == b"not really a tarball\n"
    step = old["job_document"]["steps"][0]
    assert (step["name"], step["input"]["handler"], step["input"]["path"]) == (
        "download-file.sh", "download-file.sh", "default")

    # allowStdErr as a number of lines; ignoreStepFailure as a string.
    noisy = {"name": "Noisy", "type": "runCommand",
             "input": {"command": "sh,-c,echo one >&2; echo two >&2"}}
    allowed = run_on(fleet, device, {"version": "1.0", "steps": [
        {"action": {**noisy, "allowStdErr": 2}}]})
    assert allowed["status"] == "SUCCEEDED", allowed
    refused = run_on(fleet, device, {"version": "1.0", "steps": [
        {"action": {**noisy, "allowStdErr": 1}}]})
    assert refused["status"] == "FAILED"
    assert "wrote 2 lines to stderr; allowStdErr allows 1" in refused["reason"]
    marker = home / "after-ignored"
    ignored = run_on(fleet, device, {"version": "1.0", "steps": [
        {"action": {"name": "Fails", "type": "runCommand", "input": {"command": "false"},
                    "ignoreStepFailure": "true"}},
        {"action": {"name": "Goes on", "type": "runCommand",
                    "input": {"command": f"touch,{marker}"}, "ignoreStepFailure": "false"}},
    ]})
    assert ignored["status"] == "SUCCEEDED" and marker.exists(), ignored

    # A handler with a path of its own: a directory the agent trusts.
    handlers = tmp_path / "opt-handlers"
    handlers.mkdir(mode=0o755)
    (handlers / "greet.sh").write_text('#!/bin/sh\necho "hello $2 from greet"\n')
    (handlers / "greet.sh").chmod(0o700)
    greeted = run_on(fleet, device, {"version": "1.0", "includeStdOut": True, "steps": [
        {"action": {"name": "Greet", "type": "runHandler",
                    "input": {"handler": "greet.sh", "args": ["world"], "path": str(handlers)}}},
    ]})
    assert (greeted["status"], greeted["stdout"]) == ("SUCCEEDED", "hello world from greet\n")
    handlers.chmod(0o777)  # now anyone could swap the script: refused
    unsafe = run_on(fleet, device, {"version": "1.0", "steps": [
        {"action": {"name": "Greet", "type": "runHandler",
                    "input": {"handler": "greet", "path": str(handlers)}}}]})
    assert unsafe["status"] == "FAILED"
    assert "writable by group or others" in unsafe["reason"]


def test_a_device_that_allows_server_handlers_only_refuses_path_executables(
    settings, server_processes, tmp_path
):
    fleet = Fleet(settings, server_processes, tmp_path)
    device = fleet.register("pi-strict")
    start_agent(fleet.processes, fleet.api.url, device, device["home"], 1.0,
                allow_local_handlers="false")
    row = run_on(fleet, device, {"version": "1.0", "steps": [
        {"name": "Echo", "type": "runHandler", "input": {"handler": "echo", "args": ["x"]}}]})
    assert row["status"] == "FAILED"
    assert "handler 'echo' not found; looked in the server" in row["reason"]


def fake_system_commands(directory: Path) -> Path:
    """systemctl and shutdown that only write down how they were called: the reboot handler
    finds them first on the agent's PATH, and the machine running the tests stays up."""
    directory.mkdir()
    calls = directory / "calls"
    for name in ("systemctl", "shutdown", "reboot"):
        (directory / name).write_text(f'#!/bin/sh\necho "{name} $*" >> {calls}\n')
        (directory / name).chmod(0o755)
    return calls


REBOOT_DOCUMENT_STEPS = [
    {"action": {"name": "Reboot Device", "type": "runHandler",
                "input": {"handler": "reboot.sh"}, "runAsUser": "root"}},
]


def start_reboot_agent(fleet: Fleet, device: dict, fakes: Path, reboot_wait_s: float):
    return start_agent(fleet.processes, fleet.api.url, device, device["home"], 1.0,
                       path_prefix=str(fakes), boot_id_file=str(device["home"] / "boot_id"),
                       reboot_wait_s=str(reboot_wait_s), log_level="DEBUG")


def wait_for_reboot_call(fleet: Fleet, job_id: str, agent, calls: Path) -> None:
    wait_until(lambda: calls.exists() and "systemctl reboot" in calls.read_text(),
               what="the reboot handler to call systemctl reboot")
    wait_until(lambda: "waiting for the system to go down" in agent.log_text(),
               what="the agent to wait for the system to go down")
    assert fleet.device_row(job_id)["status"] == "IN_PROGRESS"
    record = json.loads((fleet.tmp_path / "pi-reboot" / "state" / "current-job.json").read_text())
    assert record["running"]["reboot"] is True  # recorded before the device goes down


def test_a_reboot_job_ends_succeeded_on_a_new_boot_with_its_remaining_steps_run(
    settings, server_processes, tmp_path
):
    install_standard_library(settings)
    fleet = Fleet(settings, server_processes, tmp_path)
    device = fleet.register("pi-reboot")
    calls = fake_system_commands(tmp_path / "fakes")
    (device["home"] / "boot_id").write_text("boot-one\n")
    after, final = device["home"] / "after-reboot", device["home"] / "final"
    agent = start_reboot_agent(fleet, device, tmp_path / "fakes", reboot_wait_s=120)
    job_id = fleet.execute_on(device, {
        "_comment": "sample-job-docs/reboot.json, then a step for after the reboot",
        "version": "1.0", "steps": [
            *REBOOT_DOCUMENT_STEPS,
            {"action": {"name": "After reboot", "type": "runCommand",
                        "input": {"command": f"touch,{after}"}}},
        ],
        "finalStep": {"action": {"name": "Final", "type": "runCommand",
                                 "input": {"command": f"touch,{final}"}}},
    })
    wait_for_reboot_call(fleet, job_id, agent, calls)
    agent.stop()  # the shutdown stops the agent...
    assert not after.exists()
    (device["home"] / "boot_id").write_text("boot-two\n")  # ...and the device comes back
    start_reboot_agent(fleet, device, tmp_path / "fakes", reboot_wait_s=120)
    row = fleet.wait_for_status(job_id, "SUCCEEDED", "FAILED")
    assert (row["status"], row["executed_steps"]) == ("SUCCEEDED", 3), row
    assert after.exists() and final.exists()
    steps = row["status_details"]["steps"]
    assert [s["outcome"] for s in steps] == [
        "succeeded (system rebooted)", "succeeded", "succeeded"]
    assert calls.read_text().splitlines() == ["systemctl reboot"]  # not run a second time


def test_a_reboot_job_without_a_new_boot_id_ends_failed_after_the_timeout(
    settings, server_processes, tmp_path
):
    install_standard_library(settings)
    fleet = Fleet(settings, server_processes, tmp_path)
    device = fleet.register("pi-reboot")
    calls = fake_system_commands(tmp_path / "fakes")
    (device["home"] / "boot_id").write_text("boot-one\n")
    after = device["home"] / "after-reboot"
    agent = start_reboot_agent(fleet, device, tmp_path / "fakes", reboot_wait_s=8)
    job_id = fleet.execute_on(device, {"version": "1.0", "steps": [
        *REBOOT_DOCUMENT_STEPS,
        {"name": "After reboot", "type": "runCommand", "input": {"command": f"touch,{after}"}},
    ]})
    wait_for_reboot_call(fleet, job_id, agent, calls)
    agent.stop()
    start_reboot_agent(fleet, device, tmp_path / "fakes", reboot_wait_s=8)  # same boot id
    row = fleet.wait_for_status(job_id, "SUCCEEDED", "FAILED", timeout_s=30)
    assert row["status"] == "FAILED", row
    assert row["failed_step"] == "Reboot Device"
    assert "did not reboot within 8 s (the boot id did not change)" in row["reason"]
    assert not after.exists()
