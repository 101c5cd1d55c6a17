"""A job's status and counters follow its devices exactly, also under concurrent reports."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest
from job_rows import (
    events,
    insert_job,
    job_row,
    live_counters,
    mark_fanout_done,
    register_fleet,
    set_row_status,
    status_url,
)
from json_http import JsonHttp

from dispatcher.jobs import completion


def report(client, device, job_id, status: str, **fields):
    response = client.patch(status_url(device, job_id), json={"status": status, **fields},
                            headers=device.headers)
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def test_first_start_moves_the_job_to_in_progress_once(client):
    fleet = register_fleet(3)
    job_id = insert_job(fleet)
    assert job_row(job_id)["status"] == "QUEUED"
    report(client, fleet[0], job_id, "IN_PROGRESS")
    job = job_row(job_id)
    assert job["status"] == "IN_PROGRESS" and job["started_at"] is not None
    report(client, fleet[1], job_id, "IN_PROGRESS")
    assert job_row(job_id)["started_at"] == job["started_at"]
    assert len(events(job_id, "job.started")) == 1


def test_job_succeeds_when_every_device_succeeded(client, admin_headers):
    fleet = register_fleet(3)
    job_id = insert_job(fleet)
    for device in fleet:
        report(client, device, job_id, "IN_PROGRESS")
        assert job_row(job_id)["status"] == "IN_PROGRESS"
        report(client, device, job_id, "SUCCEEDED", exit_code=0)
    job = job_row(job_id)
    assert job["status"] == "SUCCEEDED" and job["completed_at"] is not None
    detail = client.get(f"/api/v1/jobs/executions/{job_id}", headers=admin_headers).get_json()
    assert detail["job"]["status"] == "SUCCEEDED"
    assert (detail["job"]["succeeded_devices"], detail["job"]["failed_devices"]) == (3, 0)
    completed = events(job_id, "job.completed")
    assert [e["details"]["status"] for e in completed] == ["SUCCEEDED"]


@pytest.mark.parametrize("failure", ["FAILED", "REJECTED", "TIMED_OUT"])
def test_one_failure_fails_the_job(client, failure):
    fleet = register_fleet(3)
    job_id = insert_job(fleet)
    report(client, fleet[0], job_id, "SUCCEEDED")
    report(client, fleet[1], job_id, "SUCCEEDED")
    if failure == "TIMED_OUT":  # the server's doing: the row was already timed out
        set_row_status(job_id, fleet[2], "TIMED_OUT")
        completion.complete_if_done(job_id)
    else:
        report(client, fleet[2], job_id, failure)
    job = job_row(job_id)
    assert job["status"] == "FAILED"
    counters = live_counters(job_id)
    assert (counters["succeeded_devices"], counters["failed_devices"]) == (2, 1)
    assert (job["succeeded_devices"], job["failed_devices"]) == (2, 1)
    assert completion.complete_if_done(job_id) is None  # already complete: nothing to do


def test_canceled_devices_do_not_fail_the_job(client, admin_headers):
    fleet = register_fleet(2)
    job_id = insert_job(fleet)
    report(client, fleet[0], job_id, "SUCCEEDED")
    canceled = client.post(f"/api/v1/devices/{fleet[1].uuid}/jobs/{job_id}/cancel",
                           headers=admin_headers)
    assert canceled.status_code == 200
    assert job_row(job_id)["status"] == "SUCCEEDED"


def test_job_waits_for_its_fan_out_to_finish(client):
    fleet = register_fleet(2)
    job_id = insert_job(fleet, fanout_done=False)
    for device in fleet:
        report(client, device, job_id, "SUCCEEDED")
    assert job_row(job_id)["status"] == "IN_PROGRESS"
    mark_fanout_done(job_id)
    done = completion.complete_if_done(job_id)
    assert done["status"] == "SUCCEEDED"
    assert completion.complete_if_done(job_id) is None
    assert len(events(job_id, "job.completed")) == 1


def test_counters_are_exact_after_many_concurrent_reports(app, settings, server_processes):
    """120 devices report IN_PROGRESS then their result at once, to gunicorn (3 processes)."""
    api = server_processes.start_api(settings, workers=3, threads=4)
    fleet = register_fleet(120)
    job_id = insert_job(fleet)
    failing = {device.uuid for device in fleet[::10]}

    def run(device) -> list[int]:
        with JsonHttp(api.url) as http:
            return [
                http.request("PATCH", status_url(device, job_id), {"status": status},
                             device.headers)[0]
                for status in ("IN_PROGRESS", "FAILED" if device.uuid in failing else "SUCCEEDED")
            ]

    with ThreadPoolExecutor(max_workers=12) as pool:
        codes = list(pool.map(run, fleet))
    assert all(c == [200, 200] for c in codes)
    counters = live_counters(job_id)
    assert counters["succeeded_devices"] == 108
    assert counters["failed_devices"] == 12
    assert counters["in_progress_devices"] == counters["queued_devices"] == 0
    job = job_row(job_id)
    assert job["status"] == "FAILED"
    assert (job["succeeded_devices"], job["failed_devices"]) == (108, 12)
    assert len(events(job_id, "job.completed")) == 1
    assert len(events(job_id, "job.started")) == 1
    assert len(events(job_id, "device_job.status_changed")) == 240
