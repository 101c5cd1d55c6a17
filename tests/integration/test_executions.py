"""Executions as operators read them: the list, the seed's detail, the paged device list."""

from __future__ import annotations

import uuid

import pytest
from job_rows import insert_job, register_fleet, set_row_status, status_url

from dispatcher.jobs import progress

EXECUTIONS = "/api/v1/jobs/executions"


def test_list_is_newest_first_with_live_counters_and_filters(client, admin_headers):
    fleet = register_fleet(3)
    first = insert_job(fleet, job_name="first")
    second = insert_job(fleet[:2], job_name="second")
    client.patch(status_url(fleet[0], first), json={"status": "IN_PROGRESS"},
                 headers=fleet[0].headers)
    client.patch(status_url(fleet[1], first), json={"status": "FAILED"},
                 headers=fleet[1].headers)
    page = client.get(EXECUTIONS, headers=admin_headers).get_json()
    assert (page["total"], page["limit"], page["offset"]) == (2, 50, 0)
    assert [e["job_name"] for e in page["executions"]] == ["second", "first"]
    listed = page["executions"][1]
    assert listed["job_id"] == str(first) and listed["status"] == "IN_PROGRESS"
    assert (listed["total_devices"], listed["in_progress_devices"], listed["failed_devices"],
            listed["queued_devices"]) == (3, 1, 1, 1)
    assert "job_document" not in listed
    running = client.get(f"{EXECUTIONS}?status=IN_PROGRESS", headers=admin_headers).get_json()
    assert [e["job_id"] for e in running["executions"]] == [str(first)]
    paged = client.get(f"{EXECUTIONS}?limit=1&offset=1", headers=admin_headers).get_json()
    assert [e["job_id"] for e in paged["executions"]] == [str(first)]
    assert paged["total"] == 2
    assert client.get(f"{EXECUTIONS}?status=DONE", headers=admin_headers).status_code == 400
    assert str(second) in {e["job_id"] for e in page["executions"]}


def test_detail_has_the_seed_shape_with_device_names(client, viewer_headers):
    fleet = register_fleet(2)
    job_id = insert_job(fleet, job_name="Restart nginx")
    client.patch(status_url(fleet[0], job_id), headers=fleet[0].headers, json={
        "status": "SUCCEEDED", "exit_code": 0, "stdout": "nginx restarted successfully",
    })
    client.patch(status_url(fleet[1], job_id), headers=fleet[1].headers, json={
        "status": "FAILED", "exit_code": 1, "stderr": "Permission denied",
        "failed_step": "Restart Service",
    })
    response = client.get(f"{EXECUTIONS}/{job_id}", headers=viewer_headers)
    assert response.status_code == 200
    body = response.get_json()
    job = body["job"]
    assert (job["job_id"], job["job_name"], job["status"]) == (str(job_id), "Restart nginx",
                                                              "FAILED")
    assert (job["total_devices"], job["succeeded_devices"], job["failed_devices"],
            job["in_progress_devices"]) == (2, 1, 1, 0)
    assert job["queued_at"] and job["completed_at"]
    assert job["job_document"]["version"] == "1.0"
    by_name = {d["device_name"]: d for d in body["device_statuses"]}
    assert by_name["pi-000"]["stdout"] == "nginx restarted successfully"
    assert by_name["pi-000"]["exit_code"] == 0
    assert by_name["pi-001"]["stderr"] == "Permission denied"
    assert by_name["pi-001"]["failed_step"] == "Restart Service"
    assert body["device_statuses_total"] == 2
    assert body["device_statuses_url"] == f"/api/v1/jobs/executions/{job_id}/devices"


def test_detail_of_a_big_job_is_capped_and_the_rest_is_paged(client, admin_headers):
    fleet = register_fleet(progress.DETAIL_DEVICE_LIMIT + 5)
    job_id = insert_job(fleet)
    for device in fleet[:7]:
        set_row_status(job_id, device, "FAILED")
    body = client.get(f"{EXECUTIONS}/{job_id}", headers=admin_headers).get_json()
    assert len(body["device_statuses"]) == progress.DETAIL_DEVICE_LIMIT
    assert body["device_statuses_total"] == len(fleet)
    url = body["device_statuses_url"]
    everything = []
    for offset in range(0, len(fleet), 40):
        page = client.get(f"{url}?limit=40&offset={offset}", headers=admin_headers).get_json()
        assert page["total"] == len(fleet)
        everything += page["device_statuses"]
    assert sorted(d["device_uuid"] for d in everything) == sorted(str(d.uuid) for d in fleet)
    failed = client.get(f"{url}?status=FAILED&limit=5", headers=admin_headers).get_json()
    assert failed["total"] == 7 and len(failed["device_statuses"]) == 5
    assert {d["status"] for d in failed["device_statuses"]} == {"FAILED"}


def test_unknown_execution_and_wrong_tokens(client, admin_headers):
    [pi] = register_fleet(1)
    job_id = insert_job([pi])
    missing = uuid.uuid4()
    assert client.get(f"{EXECUTIONS}/{missing}", headers=admin_headers).status_code == 404
    assert client.get(f"{EXECUTIONS}/{missing}/devices", headers=admin_headers).status_code == 404
    assert client.get(f"{EXECUTIONS}/not-a-uuid", headers=admin_headers).status_code == 404
    assert client.get(f"{EXECUTIONS}/{job_id}", headers=pi.headers).status_code == 403
    assert client.get(EXECUTIONS).status_code == 401


@pytest.mark.parametrize(("limit", "offset"), [(3, 0), (2, 0), (2, 2), (5, 0), (1, 2), (3, 3)])
def test_every_page_tells_the_whole_total(client, admin_headers, limit, offset):
    """Full pages, short last pages and the page just past the end: the total of all three."""
    devices = register_fleet(1)
    for _ in range(3):
        insert_job(devices)
    page = client.get(f"/api/v1/jobs/executions?limit={limit}&offset={offset}",
                      headers=admin_headers).get_json()
    assert len(page["executions"]) == max(0, min(limit, 3 - offset))
    assert page["total"] == 3


def test_a_page_past_the_end_still_tells_the_total(client, admin_headers):
    devices = register_fleet(1)
    for _ in range(2):
        insert_job(devices)
    page = client.get("/api/v1/jobs/executions?offset=10", headers=admin_headers).get_json()
    assert page["executions"] == [] and page["total"] == 2
    [device] = devices
    history = client.get(f"/api/v1/devices/{device.uuid}/jobs?offset=10",
                         headers=admin_headers).get_json()
    assert history["jobs"] == [] and history["total"] == 2
