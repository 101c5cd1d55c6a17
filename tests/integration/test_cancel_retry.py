"""Cancel and retry, for a whole execution and for one device, while devices are mid-job."""

from __future__ import annotations

import uuid

import pytest
from job_rows import (
    events,
    insert_job,
    job_row,
    live_counters,
    next_url,
    register_fleet,
    set_row_status,
    status_url,
)

from dispatcher import db
from dispatcher.jobs import completion, control
from dispatcher.sender import deliver

EXECUTIONS = "/api/v1/jobs/executions"


def device_url(device, job_id, action: str) -> str:
    return f"/api/v1/devices/{device.uuid}/jobs/{job_id}/{action}"


def row(job_id, device) -> dict:
    return db.one("get_device_job", job_id=job_id, device_uuid=device.uuid)


def report(client, device, job_id, status: str):
    return client.patch(status_url(device, job_id), json={"status": status},
                        headers=device.headers)


@pytest.fixture
def mid_job(client):
    """Four devices of one job: one done, one running, two not started."""
    fleet = register_fleet(4)
    job_id = insert_job(fleet)
    assert report(client, fleet[0], job_id, "SUCCEEDED").status_code == 200
    assert report(client, fleet[1], job_id, "IN_PROGRESS").status_code == 200
    return job_id, fleet


def test_cancel_without_force_lets_running_devices_finish(client, admin_headers, mid_job):
    job_id, (done, running, waiting, _) = mid_job
    response = client.post(f"{EXECUTIONS}/{job_id}/cancel", headers=admin_headers)
    assert response.status_code == 200
    body = response.get_json()
    assert body["canceled_devices"] == 2
    assert body["job"]["status"] == "CANCELED"
    assert (body["job"]["canceled_devices"], body["job"]["in_progress_devices"]) == (2, 1)
    assert body["job"]["completed_at"] is not None
    # The waiting device gets nothing; the running one may resume and finish.
    assert client.get(next_url(waiting), headers=waiting.headers).get_json()["message"]
    resumed = client.get(next_url(running), headers=running.headers).get_json()
    assert resumed["jobId"] == str(job_id)
    assert report(client, running, job_id, "SUCCEEDED").status_code == 200
    late = report(client, waiting, job_id, "IN_PROGRESS")
    assert late.status_code == 409
    assert late.get_json()["current_status"] == "CANCELED"
    assert job_row(job_id)["status"] == "CANCELED"
    assert row(job_id, done)["status"] == "SUCCEEDED"
    [event] = events(job_id, "job.canceled")
    assert event["details"] == {"from": "IN_PROGRESS", "to": "CANCELED", "force": False,
                                "reason": None}
    # Each canceled row has its own event, as a policy's cancel writes them.
    canceled = events(job_id, "device_job.canceled")
    assert sorted(e["device_uuid"] for e in canceled) == sorted(d.uuid for d in mid_job[1][2:])
    assert all(e["details"]["from"] == "QUEUED" for e in canceled)


def test_cancel_with_force_stops_running_devices(client, admin_headers, mid_job):
    job_id, (done, running, waiting, _) = mid_job
    response = client.post(f"{EXECUTIONS}/{job_id}/cancel", headers=admin_headers,
                           json={"force": True, "reason": "wrong config"})
    assert response.status_code == 200
    assert response.get_json()["canceled_devices"] == 3
    assert row(job_id, running)["reason"] == "wrong config"
    late = report(client, running, job_id, "SUCCEEDED")
    assert late.status_code == 409
    assert late.get_json()["current_status"] == "CANCELED"
    counters = live_counters(job_id)
    assert (counters["succeeded_devices"], counters["canceled_devices"]) == (1, 3)
    assert client.get(next_url(running), headers=running.headers).get_json()["message"]


def test_cancel_walks_a_big_job_in_chunks(app, settings):
    fleet = register_fleet(11)
    job_id = insert_job(fleet)
    set_row_status(job_id, fleet[5], "IN_PROGRESS")
    result = deliver(control.cancel_execution(job_id, "admin:test", chunk_rows=3), settings)
    assert result["canceled_devices"] == 10
    counters = live_counters(job_id)
    assert (counters["canceled_devices"], counters["in_progress_devices"]) == (10, 1)
    forced = deliver(control.cancel_execution(job_id, "admin:test", force=True,
                                                chunk_rows=3), settings)
    assert forced["canceled_devices"] == 1
    assert live_counters(job_id)["canceled_devices"] == 11


def test_a_finished_or_unknown_job_cannot_be_canceled(client, admin_headers):
    [pi] = register_fleet(1)
    job_id = insert_job([pi])
    report(client, pi, job_id, "SUCCEEDED")
    response = client.post(f"{EXECUTIONS}/{job_id}/cancel", headers=admin_headers)
    assert response.status_code == 409
    assert response.get_json()["current_status"] == "SUCCEEDED"
    assert client.post(f"{EXECUTIONS}/{uuid.uuid4()}/cancel",
                       headers=admin_headers).status_code == 404


def test_cancel_and_retry_need_an_admin_token(client, viewer_headers, mid_job):
    job_id, (_, running, _, _) = mid_job
    for headers in (viewer_headers, running.headers):
        assert client.post(f"{EXECUTIONS}/{job_id}/cancel", headers=headers).status_code == 403
        assert client.post(f"{EXECUTIONS}/{job_id}/retry", headers=headers).status_code == 403
        assert client.post(device_url(running, job_id, "cancel"),
                           headers=headers).status_code == 403
    assert job_row(job_id)["status"] == "IN_PROGRESS"


def test_cancel_one_device_needs_force_when_it_is_running(client, admin_headers, mid_job):
    job_id, (done, running, waiting, _) = mid_job
    refused = client.post(device_url(running, job_id, "cancel"), headers=admin_headers)
    assert refused.status_code == 409
    assert refused.get_json()["current_status"] == "IN_PROGRESS"
    forced = client.post(device_url(running, job_id, "cancel"), headers=admin_headers,
                         json={"force": True})
    assert forced.status_code == 200 and forced.get_json()["status"] == "CANCELED"
    queued = client.post(device_url(waiting, job_id, "cancel"), headers=admin_headers)
    assert queued.status_code == 200 and queued.get_json()["status"] == "CANCELED"
    finished = client.post(device_url(done, job_id, "cancel"), headers=admin_headers)
    assert finished.status_code == 409
    assert finished.get_json()["current_status"] == "SUCCEEDED"
    assert job_row(job_id)["status"] == "IN_PROGRESS"  # one device still queued
    assert [e["details"]["from"] for e in events(job_id, "device_job.canceled")] == [
        "IN_PROGRESS", "QUEUED",
    ]


def test_retry_queues_failed_devices_again_with_the_next_execution_number(
    client, admin_headers
):
    fleet = register_fleet(4)
    job_id = insert_job(fleet)
    report(client, fleet[0], job_id, "SUCCEEDED")
    report(client, fleet[1], job_id, "FAILED")
    report(client, fleet[2], job_id, "REJECTED")
    set_row_status(job_id, fleet[3], "TIMED_OUT")
    completion.complete_if_done(job_id)
    assert job_row(job_id)["status"] == "FAILED"

    response = client.post(f"{EXECUTIONS}/{job_id}/retry", headers=admin_headers)
    assert response.status_code == 200
    body = response.get_json()
    assert body["retried_devices"] == 3
    assert body["job"]["status"] == "IN_PROGRESS" and body["job"]["completed_at"] is None
    assert (body["job"]["queued_devices"], body["job"]["failed_devices"]) == (3, 0)
    assert body["job"]["succeeded_devices"] == 1
    polled = client.get(next_url(fleet[1]), headers=fleet[1].headers).get_json()
    assert (polled["jobId"], polled["executionNumber"]) == (str(job_id), 2)
    for device in fleet[1:]:
        assert report(client, device, job_id, "SUCCEEDED").status_code == 200
    assert job_row(job_id)["status"] == "SUCCEEDED"
    history = client.get(f"/api/v1/devices/{fleet[1].uuid}/jobs",
                         headers=admin_headers).get_json()
    assert [(j["execution_number"], j["status"], j["is_latest"]) for j in history["jobs"]] == [
        (2, "SUCCEEDED", True), (1, "FAILED", False),
    ]
    [event] = events(job_id, "job.retried")
    assert event["details"]["devices"] == 3


def test_retry_one_device(client, admin_headers):
    fleet = register_fleet(2)
    job_id = insert_job(fleet)
    report(client, fleet[0], job_id, "FAILED")
    refused = client.post(device_url(fleet[1], job_id, "retry"), headers=admin_headers)
    assert refused.status_code == 409
    assert refused.get_json()["current_status"] == "QUEUED"
    response = client.post(device_url(fleet[0], job_id, "retry"), headers=admin_headers)
    assert response.status_code == 200
    assert (response.get_json()["status"], response.get_json()["execution_number"]) == (
        "QUEUED", 2,
    )
    assert live_counters(job_id)["queued_devices"] == 2
    [event] = events(job_id, "device_job.retried")
    assert event["device_uuid"] == fleet[0].uuid
    stranger = register_fleet(1, prefix="other")[0]
    assert client.post(device_url(stranger, job_id, "retry"),
                       headers=admin_headers).status_code == 404


def test_a_canceled_job_cannot_be_retried(client, admin_headers):
    [pi] = register_fleet(1)
    job_id = insert_job([pi])
    report(client, pi, job_id, "IN_PROGRESS")
    client.post(f"{EXECUTIONS}/{job_id}/cancel", headers=admin_headers, json={"force": True})
    response = client.post(f"{EXECUTIONS}/{job_id}/retry", headers=admin_headers)
    assert response.status_code == 409
    assert response.get_json()["current_status"] == "CANCELED"
