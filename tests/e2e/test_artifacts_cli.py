"""``dispatcher artifacts upload|list|show|delete`` and ``jobs execute --artifact`` against the
real API and a real agent, with the server's libraries blocked (tests/operator_cli.py): the
guide's nginx workflow with its config delivered as an artifact."""

from __future__ import annotations

import hashlib
import json

import pytest
from agent_processes import start_agent
from operator_cli import operator_env, run
from suite_constants import TEST_ADMIN_TOKEN
from test_agent_e2e import Fleet

pytestmark = pytest.mark.slow

NGINX_CONF = b"worker_processes 1;\nevents {}\nhttp { server { listen 8080; } }\n"
# The guide's template, its download's URL an artifact instead of a web server's.
GUIDE_TEMPLATE = {
    "name": "update-nginx-config", "category": "deployment",
    "job_document": {"version": "1.0", "includeStdOut": True, "steps": [
        {"name": "Backup current config", "type": "runCommand",
         "input": {"command": "cp,/etc/nginx/nginx.conf,/etc/nginx/nginx.conf.backup"}},
        {"name": "Download new config", "type": "runHandler", "input": {
            "handler": "download-file", "args": ["artifact:nginx.conf", "/etc/nginx/nginx.conf"]}},
        {"name": "Test config", "type": "runCommand", "input": {"command": "nginx,-t"},
         "runAsUser": "root"},
        {"name": "Reload nginx", "type": "runCommand",
         "input": {"command": "systemctl,reload,nginx"}, "runAsUser": "root"}]},
}


def test_upload_deliver_with_execute_artifact_show_and_delete(settings, server_processes,
                                                              tmp_path):
    fleet = Fleet(settings, server_processes, tmp_path)
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


def test_the_guides_nginx_workflow_with_its_config_uploaded_as_an_artifact(
        settings, server_processes, tmp_path):
    """The guide's update-nginx-config template, its URL replaced by ``artifact:nginx.conf``:
    backup, download, ``nginx -t``, reload (``nginx`` and ``systemctl`` are the device's own,
    here stand-ins on the agent's PATH that record their call)."""
    fleet = Fleet(settings, server_processes, tmp_path)
    env = operator_env(fleet.api.url, TEST_ADMIN_TOKEN, tmp_path / "no-config.json")
    config = tmp_path / "nginx.conf"
    config.write_bytes(NGINX_CONF)
    assert run(env, "artifacts", "upload", str(config)).returncode == 0
    device = fleet.register("web-02", device_type="raspberry-pi")
    fleet.call("PATCH", f"/devices/{device['uuid']}", {"attributes": {"environment": "production"}})
    etc = device["home"] / "etc-nginx"
    etc.mkdir()
    (etc / "nginx.conf").write_bytes(b"old config\n")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for command in ("nginx", "systemctl"):
        stand_in = bin_dir / command
        stand_in.write_text(f'#!/bin/sh\necho "{command} $*" >> "$DEVICE_HOME/calls"\n')
        stand_in.chmod(0o755)
    document = json.loads(json.dumps(GUIDE_TEMPLATE["job_document"]).replace(
        "/etc/nginx", str(etc)))
    fleet.call("POST", "/jobs/templates", {**GUIDE_TEMPLATE, "job_document": document},
               expect=201)
    start_agent(fleet.processes, fleet.api.url, device, device["home"], 1.0,
                path_prefix=str(bin_dir))
    executed = run(env, "jobs", "execute", "--template", "update-nginx-config", "--group",
                   "device_type=raspberry-pi", "environment=production", "--watch")
    assert executed.returncode == 0, executed.stdout + executed.stderr
    assert (etc / "nginx.conf").read_bytes() == NGINX_CONF
    assert (etc / "nginx.conf.backup").read_bytes() == b"old config\n"
    assert (device["home"] / "calls").read_text() == "nginx -t\nsystemctl reload nginx\n"
