"""``dispatcher artifacts upload|list|show|delete`` and ``jobs execute --artifact`` against the
real API and a real agent, with the server's libraries blocked (tests/operator_cli.py): the
guide's nginx workflow with its config delivered as an artifact."""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace

import pytest
from conftest import TEST_ADMIN_TOKEN
from operator_cli import operator_env, run
from test_agent_e2e import Fleet

pytestmark = pytest.mark.slow

NGINX_CONF = b"worker_processes 1;\nevents {}\nhttp { server { listen 8080; } }\n"


def test_upload_deliver_with_execute_artifact_show_and_delete(settings, server_processes,
                                                              tmp_path):
    fleet = Fleet(replace(settings, artifact_dir=str(tmp_path / "artifacts")),
                  server_processes, tmp_path)
    env = operator_env(fleet.api.url, TEST_ADMIN_TOKEN, tmp_path / "no-config.json")
    config = tmp_path / "nginx.conf"
    config.write_bytes(NGINX_CONF)
    digest = hashlib.sha256(NGINX_CONF).hexdigest()

    uploaded = run(env, "artifacts", "upload", str(config))
    assert uploaded.returncode == 0, uploaded.stderr
    assert f"artifact nginx.conf ({len(NGINX_CONF)} bytes, sha256 {digest})" in uploaded.stdout
    listed = run(env, "artifacts", "list")
    assert "nginx.conf" in listed.stdout and digest[:32] in listed.stdout

    device = fleet.register("web-01")
    fleet.start_agent(device)
    destination = device["home"] / "nginx.conf"
    executed = run(env, "jobs", "execute", "--artifact", f"nginx.conf={destination}",
                   "--device", str(device["uuid"]), "--watch", "--output", "json")
    assert executed.returncode == 0, executed.stdout + executed.stderr
    assert destination.read_bytes() == NGINX_CONF

    shown = json.loads(run(env, "artifacts", "show", "nginx.conf", "--output", "json").stdout)
    assert shown["sha256"] == digest and shown["used_by"][0]["status"] == "SUCCEEDED"
    deleted = run(env, "artifacts", "delete", "nginx.conf")
    assert deleted.returncode == 0, deleted.stderr
    assert "nginx.conf" not in run(env, "artifacts", "list").stdout
