"""``dispatcher devices search``, ``dispatcher groups …`` and ``jobs execute --group-name /
--filter`` against the real API (gunicorn), with the server's libraries blocked."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
from operator_cli import operator_env, run
from suite_constants import TEST_ADMIN_TOKEN

from client import DeviceJobsClient

pytestmark = pytest.mark.slow

DOCUMENT = {"version": "1.0", "steps": [
    {"name": "s", "type": "runCommand", "input": {"command": "true"}}]}


@pytest.fixture
def stack(settings, server_processes, tmp_path):
    api = server_processes.start_api(replace(settings, poll_after_s=1))
    env = operator_env(api.url, TEST_ADMIN_TOKEN, tmp_path / "no-config.json")
    client = DeviceJobsClient(api.url, TEST_ADMIN_TOKEN)
    devices = [client.create_device({"device_name": f"pi-{i}", "device_type": "pi",
                                     "attributes": {"site": site}})
               for i, site in enumerate(["berlin", "berlin", "muc-1"])]
    return client, env, devices


def test_search_groups_and_execute_by_group_from_the_command_line(stack, tmp_path):
    client, env, devices = stack
    by_site = '{"site": {"$in": ["berlin", "hamburg"]}}'
    found = run(env, "devices", "search", "--filter", by_site, "--output", "json")
    assert found.returncode == 0, found.stderr
    assert sorted(d["device_name"] for d in json.loads(found.stdout)) == ["pi-0", "pi-1"]
    assert run(env, "devices", "search", "--filter", by_site, "--count").stdout == "2\n"
    bad = run(env, "devices", "search", "--filter", '{"site": {"$in": []}}')
    assert bad.returncode != 0 and "site.$in" in bad.stderr

    filter_file = tmp_path / "munich.json"
    filter_file.write_text('{"site": {"$prefix": "muc-"}}')
    created = run(env, "groups", "create", "munich", "--filter", str(filter_file))
    assert created.stdout == "group munich created (dynamic, 1 devices now)\n", created.stderr
    picked = run(env, "groups", "create", "picked", "--device", str(devices[0]["uuid"]))
    assert "static, 1 devices" in picked.stdout
    listed = json.loads(run(env, "groups", "list", "--output", "json").stdout)
    assert [(g["name"], g["member_count"]) for g in listed["groups"]] == [
        ("munich", 1), ("picked", 1)]
    table = run(env, "groups", "list").stdout.splitlines()
    assert table[0].split()[:3] == ["NAME", "KIND", "MEMBERS"]
    assert table[1].split()[:3] == ["munich", "dynamic", "1"]
    shown = json.loads(run(env, "groups", "show", "munich", "--output", "json").stdout)
    assert shown["member_count"] == 1

    document = tmp_path / "job.json"
    document.write_text(json.dumps(DOCUMENT))
    by_group = run(env, "jobs", "execute", "--document", str(document), "--name", "g",
                   "--group-name", "munich", "--output", "json")
    assert by_group.returncode == 0, by_group.stderr
    job = json.loads(by_group.stdout)["job"]
    assert (job["target_group"], job["total_devices"]) == ("munich", 1)
    by_filter = run(env, "jobs", "execute", "--document", str(document), "--name", "f",
                    "--filter", by_site, "--dry-run")
    assert "2 device(s) match" in by_filter.stdout, by_filter.stderr

    refused = run(env, "groups", "delete", "munich")
    assert refused.returncode != 0 and "unfinished" in refused.stderr
    client.cancel(job["job_id"])
    assert run(env, "groups", "delete", "munich").stdout == "group munich deleted\n"
