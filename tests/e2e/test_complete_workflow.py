"""The guide's "Complete Workflow Example", end to end through real processes: a template is
created, executed on a group of 12 production Raspberry Pis, fanned out by a Celery worker,
polled and reported on by every device over HTTP against the API under gunicorn, and the
execution shows 12/12 devices succeeded and the job complete, with Redis and with RabbitMQ as
the Celery broker. Then the same workflow on real agents, whose download-file step is the
standard handler that ``dispatcher migrate`` installs."""

from __future__ import annotations

import copy
import functools
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from json_http import JsonHttp
from private_services import PrivateRabbitMQ
from test_agent_e2e import Fleet
from test_device_client_documents import install_standard_library

pytestmark = pytest.mark.slow

FANOUT_TIMEOUT_S = 60.0
TEMPLATE = {
    "name": "update-nginx-config",
    "category": "deployment",
    "job_document": {
        "version": "1.0",
        "includeStdOut": True,
        "steps": [
            {"name": "Backup current config", "type": "runCommand",
             "input": {"command": "cp,/etc/nginx/nginx.conf,/etc/nginx/nginx.conf.backup"}},
            {"name": "Download new config", "type": "runHandler",
             "input": {"handler": "download-file",
                       "args": ["https://config.example.com/nginx.conf",
                                "/etc/nginx/nginx.conf"]}},
            {"name": "Test config", "type": "runCommand", "input": {"command": "nginx,-t"},
             "runAsUser": "root"},
            {"name": "Reload nginx", "type": "runCommand",
             "input": {"command": "systemctl,reload,nginx"}, "runAsUser": "root"},
        ],
    },
}
PRODUCTION_PIS = {"device_type": "raspberry-pi", "environment": "production"}


def register(http: JsonHttp, admin: dict, name: str, device_type: str, environment: str):
    status, device = http.request("POST", "/api/v1/devices", {
        "device_name": name, "device_type": device_type,
        "attributes": {"environment": environment},
    }, admin)
    assert status == 201, device
    return device["uuid"], {"Authorization": f"Bearer {device['device_token']}"}


def poll_until_job(http: JsonHttp, device_uuid: str, headers: dict) -> dict:
    deadline = time.monotonic() + FANOUT_TIMEOUT_S
    while True:
        status, answer = http.request("GET", f"/api/v1/devices/{device_uuid}/jobs/next",
                                      headers=headers)
        assert status == 200, answer
        if "jobId" in answer:
            return answer
        assert answer == {"message": "No pending jobs", "pollAfterSeconds": 30}
        if time.monotonic() > deadline:
            raise AssertionError(f"device {device_uuid} got no job in {FANOUT_TIMEOUT_S}s")
        time.sleep(0.1)


@pytest.fixture(scope="module")
def rabbitmq(tmp_path_factory) -> Iterator[PrivateRabbitMQ]:
    node = PrivateRabbitMQ(tmp_path_factory.mktemp("rabbitmq"))
    node.start()
    yield node
    node.remove()


@pytest.fixture
def broker() -> str:
    return "redis"


@pytest.fixture
def settings(settings, broker, request):
    """The test's settings, on a RabbitMQ node of the module's own when ``broker`` says so."""
    if broker == "redis":
        return settings
    return replace(settings, celery_broker_url=request.getfixturevalue("rabbitmq").url)


@pytest.mark.parametrize("broker", ["redis", "rabbitmq"])
def test_complete_workflow_on_twelve_production_pis(
    settings, celery_worker, api_server, admin_headers
):
    http = JsonHttp(api_server.url)
    fleet = [register(http, admin_headers, f"pi-prod-{i:02d}", "raspberry-pi", "production")
             for i in range(12)]
    bystanders = [register(http, admin_headers, "pi-staging", "raspberry-pi", "staging"),
                  register(http, admin_headers, "nuc-prod", "intel-nuc", "production")]

    # 1. Create a job template.
    status, template = http.request("POST", "/api/v1/jobs/templates", TEMPLATE, admin_headers)
    assert status == 201, template

    # 2. Execute it on the group.
    status, created = http.request("POST", "/api/v1/jobs/execute", {
        "job_name": "Update nginx config - Production", "template_id": template["id"],
        "target_type": "group", "target_filter": PRODUCTION_PIS,
        "created_by": "john@example.com",
    }, admin_headers)
    assert status == 201, created
    job = created["job"]
    assert created["message"] == "Job created and queued for 12 device(s)"
    assert (job["job_name"], job["status"], job["total_devices"]) == (
        "Update nginx config - Production", "QUEUED", 12)
    job_id = job["job_id"]

    for device_uuid, headers in fleet:
        # 3. The device polls and gets the job, in the seed's camelCase shape.
        answer = poll_until_job(http, device_uuid, headers)
        assert answer["jobId"] == job_id
        assert answer["jobName"] == "Update nginx config - Production"
        assert answer["jobDocument"]["steps"][1]["input"]["handler"] == "download-file"
        assert answer["deviceUuid"] == device_uuid and answer["queuedAt"]
        # 4-5. It runs the job and reports progress...
        status, progress = http.request(
            "PATCH", f"/api/v1/devices/{device_uuid}/jobs/{job_id}/status",
            {"status": "IN_PROGRESS", "executed_steps": 2,
             "stdout": "Config backed up\nNew config downloaded"}, headers)
        assert (status, progress["status"]) == (200, "IN_PROGRESS"), progress
        # 6. ...and completion.
        status, done = http.request(
            "PATCH", f"/api/v1/devices/{device_uuid}/jobs/{job_id}/status",
            {"status": "SUCCEEDED", "exit_code": 0, "executed_steps": 4,
             "stdout": "All steps completed successfully\nnginx reloaded"}, headers)
        assert (status, done["status"], done["executed_steps"]) == (200, "SUCCEEDED", 4), done

    for device_uuid, headers in bystanders:
        status, answer = http.request("GET", f"/api/v1/devices/{device_uuid}/jobs/next",
                                      headers=headers)
        assert answer["message"] == "No pending jobs"

    # 7. The portal shows 12/12 devices succeeded and the job complete.
    status, detail = http.request("GET", f"/api/v1/jobs/executions/{job_id}",
                                  headers=admin_headers)
    assert status == 200, detail
    job = detail["job"]
    assert job["status"] == "SUCCEEDED" and job["completed_at"]
    assert (job["total_devices"], job["succeeded_devices"], job["failed_devices"],
            job["in_progress_devices"], job["queued_devices"]) == (12, 12, 0, 0, 0)
    assert detail["device_statuses_total"] == 12
    assert {d["device_name"] for d in detail["device_statuses"]} == {
        f"pi-prod-{i:02d}" for i in range(12)}
    assert {(d["status"], d["exit_code"], d["stdout"]) for d in detail["device_statuses"]} == {
        ("SUCCEEDED", 0, "All steps completed successfully\nnginx reloaded")}
    http.close()


def harmless_update_nginx_config(conf_dir: Path, config_url: str, sha256: str | None = None):
    """The guide's update-nginx-config, its nginx and systemctl steps replaced by harmless
    commands, and its paths and URL pointed at a temporary directory and a local server."""
    template = copy.deepcopy(TEMPLATE)
    steps = template["job_document"]["steps"]
    steps[0]["input"]["command"] = f"cp,{conf_dir}/nginx.conf,{conf_dir}/nginx.conf.backup"
    steps[1]["input"]["args"] = [config_url, f"{conf_dir}/nginx.conf"]
    if sha256 is not None:
        steps[1]["input"]["args"].append(sha256)
    steps[2]["input"]["command"] = f"grep,-q,worker_processes,{conf_dir}/nginx.conf"
    steps[3]["input"]["command"] = "sh,-c,echo nginx reloaded; touch $DEVICE_HOME/reloaded"
    return template


def test_complete_workflow_succeeds_on_real_agents_and_a_wrong_sha256_fails_it(
    settings, server_processes, tmp_path
):
    install_standard_library(settings)
    www = tmp_path / "www"
    www.mkdir()
    new_config = b"worker_processes 4;\nevents {}\n"
    (www / "nginx.conf").write_bytes(new_config)
    handler = functools.partial(SimpleHTTPRequestHandler, directory=str(www))
    web = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=web.serve_forever, daemon=True).start()
    config_url = f"http://127.0.0.1:{web.server_address[1]}/nginx.conf"
    conf_dir = tmp_path / "etc-nginx"
    conf_dir.mkdir()
    (conf_dir / "nginx.conf").write_text("worker_processes 1;\n")

    fleet = Fleet(settings, server_processes, tmp_path)
    pis = []
    for i in range(3):
        pi = fleet.call("POST", "/devices", {
            "device_name": f"pi-prod-{i}", "device_type": "raspberry-pi",
            "attributes": {"environment": "production"}}, expect=201)
        pi["home"] = tmp_path / pi["device_name"]
        pi["home"].mkdir()
        fleet.start_agent(pi)
        pis.append(pi)
    try:
        template = fleet.call("POST", "/jobs/templates",
                              harmless_update_nginx_config(conf_dir, config_url), expect=201)
        job_id = fleet.execute({"job_name": "Update nginx config - Production",
                                "template_id": template["id"], "target_type": "group",
                                "target_filter": PRODUCTION_PIS})
        detail = fleet.wait_for_job(job_id, "SUCCEEDED", "FAILED", timeout_s=90)
        job = detail["job"]
        assert (job["status"], job["total_devices"], job["succeeded_devices"]) == (
            "SUCCEEDED", 3, 3), detail["device_statuses"]
        for row in detail["device_statuses"]:
            assert (row["status"], row["exit_code"], row["executed_steps"]) == ("SUCCEEDED", 0, 4)
            assert "downloaded " + config_url in row["stdout"]
            assert row["stdout"].endswith("nginx reloaded\n")
        assert (conf_dir / "nginx.conf").read_bytes() == new_config
        assert (conf_dir / "nginx.conf.backup").exists()
        assert all((pi["home"] / "reloaded").exists() for pi in pis)

        for pi in pis:
            (pi["home"] / "reloaded").unlink()
        wrong = harmless_update_nginx_config(conf_dir, config_url, sha256="0" * 64)
        failed_id = fleet.execute({"job_document": wrong["job_document"],
                                   "target_type": "device", "target_devices": [pis[0]["uuid"]]})
        row = fleet.wait_for_status(failed_id, "SUCCEEDED", "FAILED", timeout_s=60)
        assert (row["status"], row["failed_step"]) == ("FAILED", "Download new config"), row
        # The agent downloads the file itself: the cause is the row's reason.
        assert "sha256 mismatch" in row["reason"]
        assert not (pis[0]["home"] / "reloaded").exists()  # the steps after it did not run
    finally:
        web.shutdown()
        web.server_close()
