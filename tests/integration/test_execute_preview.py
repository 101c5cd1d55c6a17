"""POST /api/v1/jobs/execute/preview: an execute request checked and shown, nothing stored."""

from __future__ import annotations

import pytest
from job_rows import quietly
from job_templates import RESTART_TEMPLATE

from dispatcher import db
from dispatcher.fleet.devices import register_device

PREVIEW = "/api/v1/jobs/execute/preview"


def stored_counts() -> dict:
    with db.pool().connection() as conn:
        return conn.execute(
            "SELECT (SELECT count(*) FROM job_executions) AS jobs,"
            " (SELECT count(*) FROM device_job_status) AS rows,"
            " (SELECT count(*) FROM job_events) AS events").fetchone()


@pytest.fixture
def template_id(client, admin_headers) -> int:
    for i in range(3):
        quietly(register_device(f"pi-{i}", "raspberry-pi", {"rack": "r1"}))
    quietly(register_device("gw", "gateway", {"rack": "r1"}))
    response = client.post("/api/v1/jobs/templates", headers=admin_headers, json={
        **RESTART_TEMPLATE, "parameters": {"SERVICE_NAME": "nginx"}})
    assert response.status_code == 201, response.get_json()
    return response.get_json()["id"]


def test_a_preview_renders_counts_and_merges_policies_without_storing_anything(
    client, admin_headers, template_id
):
    before = stored_counts()
    response = client.post(PREVIEW, headers=admin_headers, json={
        "template_id": template_id, "parameters": {"SERVICE_NAME": "sshd"},
        "target_type": "group", "target_filter": {"device_type": "raspberry-pi"},
        "rollout_config": {"maximum_per_minute": 5},
        "scheduling_config": {"start_time": "2999-01-01T00:00:00Z"},
    })
    assert response.status_code == 200, response.get_json()
    preview = response.get_json()
    assert preview["total_devices"] == 3
    assert preview["job_name"] == "restart-service"
    assert preview["job_document"]["steps"][0]["input"]["command"] == "systemctl,restart,sshd"
    assert preview["rollout_config"] == {"maximum_per_minute": 5}
    assert preview["status"] == "SCHEDULED"
    assert stored_counts() == before


def test_a_preview_refuses_what_execute_refuses(client, admin_headers, template_id):
    response = client.post(PREVIEW, headers=admin_headers, json={
        "template_id": template_id, "target_type": "group", "target_filter": {"rack": "none"}})
    assert response.status_code == 400
    assert "target_filter" in response.get_json()["errors"]
    response = client.post(PREVIEW, headers=admin_headers, json={
        "template_id": template_id, "target_type": "all", "execution_type": "recurring"})
    assert response.status_code == 400
    assert "schedule" in response.get_json()["errors"]


def test_a_viewer_may_preview_but_not_execute(client, viewer_headers, template_id):
    body = {"template_id": template_id, "target_type": "all"}
    response = client.post(PREVIEW, headers=viewer_headers, json=body)
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["total_devices"] == 4
    assert client.post("/api/v1/jobs/execute", headers=viewer_headers, json=body).status_code \
        == 403
