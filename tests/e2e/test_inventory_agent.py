"""A real agent reports its inventory (built-in facts and an inventory.d script) to the real
API, only when it changed, and a continuous job on a filter of those facts reaches it."""

from __future__ import annotations

import pytest
from agent_processes import start_agent
from processes import wait_until
from test_agent_e2e import Fleet

pytestmark = pytest.mark.slow

SCRIPT = """#!/bin/sh
echo "rack=$(cat "$DEVICE_HOME/rack")"
echo "role=edge"
echo "role=canary"
echo "os.codename=bookworm"
echo "not a fact"
"""


def write_script(device: dict) -> None:
    scripts = device["home"] / "inventory.d"
    scripts.mkdir()
    script = scripts / "10-site"
    script.write_text(SCRIPT)
    script.chmod(0o755)
    (scripts / "README").write_text("not executable, not run\n")


def test_agent_reports_its_facts_and_a_continuous_job_follows_them(
    settings, server_processes, tmp_path
):
    fleet = Fleet(settings, server_processes, tmp_path)
    device = fleet.register("pi-inventory")
    write_script(device)
    (device["home"] / "rack").write_text("r7")
    job_id = fleet.execute({
        "job_document": {"version": "1.0", "steps": [
            {"name": "Mark", "type": "runCommand",
             "input": {"command": "sh,-c,touch $DEVICE_HOME/ran"}}]},
        "target_type": "group", "execution_type": "continuous",
        "target_filter": {"inventory.rack": "r8", "inventory.role": {"$contains": "canary"}}})
    agent = start_agent(fleet.processes, fleet.api.url, device, device["home"],
                        inventory_interval_s="0.5")
    uuid = device["uuid"]

    inventory = wait_until(lambda: fleet.call("GET", f"/devices/{uuid}")["inventory"],
                           30, "the first inventory report")
    assert inventory["rack"] == "r7"
    assert inventory["role"] == ["edge", "canary"]
    assert inventory["os"]["codename"] == "bookworm"
    assert inventory["os"]["id"] and inventory["kernel"] and inventory["arch"]
    assert inventory["hostname"] and inventory["python_version"]
    assert inventory["agent_version"]
    assert isinstance(inventory["disk_free_mb"], int) and inventory["memory_mb"] > 0
    assert "not a fact" not in str(inventory)
    assert fleet.device_row(job_id)["status"] == "(not fanned out yet)"

    first = fleet.call("GET", f"/devices/{uuid}")["inventory_updated_at"]
    assert "inventory sent" in agent.log_text()
    # The script's answer changes: the agent sends it, and the continuous job takes the device.
    (device["home"] / "rack").write_text("r8")
    wait_until(lambda: (device["home"] / "ran").exists(), 60, "the job on the changed device")
    assert fleet.wait_for_status(job_id, "SUCCEEDED")
    assert fleet.call("GET", f"/devices/{uuid}")["inventory"]["rack"] == "r8"
    assert fleet.call("GET", f"/devices/{uuid}")["inventory_updated_at"] > first
