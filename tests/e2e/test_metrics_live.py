"""`curl /metrics` on the API as deployed: the counters move when a job runs.

The API (gunicorn, two workers) and a Celery worker share one metrics directory, as in
`dispatcher dev` and the compose and systemd deployments, so the API's /metrics also shows the
worker's fan-out duration, nudges and task counters.
"""

from __future__ import annotations

import time
import urllib.request
from dataclasses import replace

import pytest
from json_http import JsonHttp
from prometheus_client.parser import text_string_to_metric_families

from dispatcher.sender import FAN_OUT_TASK, NUDGE_TASK

pytestmark = pytest.mark.slow
WAIT_S = 30.0


def scrape(api_url: str) -> dict[tuple[str, tuple], float]:
    with urllib.request.urlopen(f"{api_url}/metrics", timeout=10) as response:
        text = response.read().decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def value(samples, name: str, **labels) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


@pytest.fixture
def settings(settings):
    return replace(settings, mqtt_url="mqtt://127.0.0.1:1883")


@pytest.fixture
def stack(settings, server_processes, tmp_path, monkeypatch):
    metrics_dir = tmp_path / "metrics"
    metrics_dir.mkdir()
    # The processes inherit this; it is set only while they start.
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(metrics_dir))
    server_processes.start_worker(settings)
    api = server_processes.start_api(settings, workers=2)
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR")
    return api.url


def test_counters_move_when_a_job_runs(stack, admin_headers):
    admin = JsonHttp(stack)
    before = scrape(stack)
    assert value(before, "device_jobs_database_scrape_ok") == 1
    assert value(before, "device_jobs_executions", status="SUCCEEDED") == 0

    status, device = admin.request("POST", "/api/v1/devices", {"device_name": "pi-metrics"},
                                   admin_headers)
    assert status == 201
    device_headers = {"Authorization": f"Bearer {device['device_token']}"}
    next_path = f"/api/v1/devices/{device['uuid']}/jobs/next"
    assert admin.request("GET", next_path, headers=device_headers)[1].get("jobId") is None

    status, executed = admin.request("POST", "/api/v1/jobs/execute", {
        "job_name": "Health check", "target_type": "device", "target_devices": [device["uuid"]],
        "job_document": {"version": "1.0", "steps": [
            {"name": "Uname", "type": "runCommand", "input": {"command": "uname,-a"}}]},
    }, admin_headers)
    assert status == 201
    job_id = executed["job"]["job_id"]
    deadline = time.monotonic() + WAIT_S
    while admin.request("GET", next_path, headers=device_headers)[1].get("jobId") != job_id:
        assert time.monotonic() < deadline, "the job never reached the device"
        time.sleep(0.2)
    for report in ({"status": "IN_PROGRESS"}, {"status": "SUCCEEDED", "exit_code": 0}):
        status, _ = admin.request("PATCH", f"/api/v1/devices/{device['uuid']}/jobs/{job_id}/status",
                                  report, device_headers)
        assert status == 200

    def moved(after) -> bool:
        return value(after, "device_jobs_nudges_total", result="sent") > value(
            before, "device_jobs_nudges_total", result="sent")

    deadline = time.monotonic() + WAIT_S
    while not moved(after := scrape(stack)):
        assert time.monotonic() < deadline, "no nudge was ever counted"
        time.sleep(0.3)

    def delta(name: str, **labels) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert delta("device_jobs_http_requests_total", method="POST",
                 endpoint="/api/v1/jobs/execute", status="201") == 1
    assert delta("device_jobs_http_requests_total", method="PATCH",
                 endpoint="/api/v1/devices/<uuid:uuid>/jobs/<uuid:job_id>/status",
                 status="200") == 2
    assert delta("device_jobs_polls_total", result="job") >= 1
    assert delta("device_jobs_polls_total", result="no_job") >= 1
    assert value(after, "device_jobs_executions", status="SUCCEEDED") == 1
    assert value(after, "device_jobs_device_executions", status="SUCCEEDED") == 1
    assert delta("device_jobs_fanout_duration_seconds_count") == 1
    assert delta("device_jobs_celery_tasks_total", task=FAN_OUT_TASK, state="SUCCESS") == 1
    assert delta("device_jobs_celery_tasks_total", task=NUDGE_TASK, state="SUCCESS") >= 1
    assert delta("device_jobs_nudges_total", result="sent") >= 1
    latency = delta("device_jobs_http_request_duration_seconds_count", method="GET",
                    endpoint="/api/v1/devices/<uuid:uuid>/jobs/next")
    assert latency == delta("device_jobs_polls_total", result="job") + delta(
        "device_jobs_polls_total", result="no_job")
