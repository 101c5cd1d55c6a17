"""``dispatcher jobs execute --stage … --watch`` and ``dispatcher jobs resume`` against the real
API, a worker, beat and real agents, run with the server's libraries blocked
(tests/operator_cli.py): the watch stops with its own exit code when a gate pauses the rollout."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
from agent_processes import start_agent
from operator_cli import operator_env, run
from suite_constants import TEST_ADMIN_TOKEN

from client import DeviceJobsClient
from client.rollout_commands import EXIT_ROLLOUT_PAUSED

pytestmark = pytest.mark.slow

DOCUMENT = {"version": "1.0", "steps": [{
    "name": "Check", "type": "runCommand",
    "input": {"command": "sh,-c,test ! -e $DEVICE_HOME/fail"}}]}


def test_a_failing_canary_stops_the_watch_and_resume_rolls_out_the_rest(
        settings, server_processes, tmp_path):
    fast = replace(settings, poll_after_s=1, stage_gate_sweep_interval_s=1)
    server_processes.start_worker(fast)
    server_processes.start_beat(fast)
    api = server_processes.start_api(fast)
    env = operator_env(api.url, TEST_ADMIN_TOKEN, tmp_path / "no-config.json")
    client = DeviceJobsClient(api.url, TEST_ADMIN_TOKEN)
    devices = [client.create_device({"device_name": f"pi-{i}", "device_type": "cli-pi",
                                     "attributes": {"canary": i == 0}}) for i in range(3)]
    for device in devices:
        start_agent(server_processes, api.url, device, tmp_path / device["device_name"])
    (tmp_path / "pi-0" / "fail").touch()
    (tmp_path / "doc.json").write_text(json.dumps(DOCUMENT))
    (tmp_path / "stages.json").write_text(json.dumps(
        [{"name": "canary", "count": 1, "target_filter": {"canary": True}}]))

    watched = run(env, "jobs", "execute", "--document", str(tmp_path / "doc.json"), "--name",
                  "staged", "--all", "--stages", str(tmp_path / "stages.json"),
                  "--stage", "rest", "--gate", "max_failure_percent=0", "--watch",
                  "--interval", "0.3", "--timeout", "60")
    assert watched.returncode == EXIT_ROLLOUT_PAUSED, watched.stdout + watched.stderr
    lines = watched.stdout.splitlines()
    assert lines[-1] == ("rollout paused: gate failed: 1 of 1 devices of stage canary failed "
                         "(> 0%)")
    # Each transition the watch saw is a line; the last shows the failed canary.
    assert lines[-2].startswith("rollout PAUSED: gate failed") and "canary FAILED" in lines[-2]
    job_id = lines[0].split("job ")[1].split()[0]

    refused = run(env, "jobs", "approve", job_id)
    assert refused.returncode != 0 and "its rollout is PAUSED" in refused.stderr
    resumed = run(env, "jobs", "resume", job_id)
    assert resumed.returncode == 0, resumed.stderr
    assert resumed.stdout.startswith("rollout RUNNING: stage rest released (resumed by admin:")
    assert "canary FAILED" in resumed.stdout and "rest RELEASED" in resumed.stdout
    finished = run(env, "jobs", "watch", job_id, "--interval", "0.3", "--timeout", "60")
    assert finished.returncode == 3, finished.stdout  # FAILED: its canary failed
    shown = client.get_execution(job_id)
    assert [s["state"] for s in shown["rollout"]["stages"]] == ["FAILED", "PASSED"]
