"""Execution policies over HTTP: execute and template fields, their errors, events and runs."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from job_rows import quietly

from dispatcher.fleet.devices import register_device
from dispatcher.policies import recurring

EXECUTE = "/api/v1/jobs/execute"
TEMPLATES = "/api/v1/jobs/templates"
DOCUMENT = {"version": "1.0", "steps": [
    {"name": "uptime", "type": "runCommand", "input": {"command": "uptime"}}]}


@pytest.fixture
def devices(app) -> list:
    return [quietly(register_device(f"pi-{i}", "raspberry-pi", {"site": "lab"}))[0]["uuid"]
            for i in range(3)]


def custom_job(**policies) -> dict:
    return {"job_name": "policy job", "job_document": DOCUMENT, "target_type": "all",
            **policies}


def execute(client, headers, body: dict, status: int = 201) -> dict:
    response = client.post(EXECUTE, json=body, headers=headers)
    assert response.status_code == status, response.get_json()
    return response.get_json()


def execution(client, headers, job_id) -> dict:
    return client.get(f"/api/v1/jobs/executions/{job_id}", headers=headers).get_json()["job"]


def test_template_policies_are_defaults_the_request_overrides(client, admin_headers, devices):
    template = client.post(TEMPLATES, headers=admin_headers, json={
        "name": "staged-update", "job_document": DOCUMENT,
        "rollout_config": {"maximum_per_minute": 50},
        "timeout_config": {"in_progress_timeout_minutes": 30},
    })
    assert template.status_code == 201, template.get_json()
    assert template.get_json()["rollout_config"] == {"maximum_per_minute": 50}
    job = execute(client, admin_headers, {
        "template_id": template.get_json()["id"], "target_type": "all",
        "timeout_config": {"in_progress_timeout_minutes": 5},
    })["job"]
    shown = execution(client, admin_headers, job["job_id"])
    assert shown["rollout_config"] == {"maximum_per_minute": 50}
    assert shown["timeout_config"] == {"in_progress_timeout_minutes": 5}


def test_template_policy_update_is_audited_as_a_change(client, admin_headers):
    created = client.post(TEMPLATES, headers=admin_headers,
                          json={"name": "t", "job_document": DOCUMENT}).get_json()
    updated = client.put(f"{TEMPLATES}/{created['id']}", headers=admin_headers,
                         json={"retry_config": {"criteria_list": [
                             {"failure_type": "ALL", "number_of_retries": 2}]}})
    assert updated.status_code == 200, updated.get_json()
    assert "retry_config" in updated.get_json()["changed"]
    assert updated.get_json()["retry_config"]["criteria_list"][0]["number_of_retries"] == 2


@pytest.mark.parametrize(
    ("policies", "field"),
    [
        ({"rollout_config": {"maximum_per_minute": 0}}, "rollout_config"),
        ({"execution_type": "recurring"}, "schedule"),
        ({"schedule": {"cron": "* * * * *"}}, "schedule"),
        ({"abort_config": {"criteria_list": [{"failure_type": "FAILED"}]}}, "abort_config"),
        ({"scheduling_config": {"maintenance_windows": [{"start": "nope",
                                                         "duration_minutes": 5}]}},
         "scheduling_config"),
    ],
)
def test_bad_policies_are_refused_naming_the_field(client, admin_headers, devices, policies,
                                                   field):
    body = execute(client, admin_headers, custom_job(**policies), status=400)
    assert field in body["errors"]


def test_continuous_on_a_device_list_is_refused(client, admin_headers, devices):
    body = execute(client, admin_headers, {
        "job_name": "x", "job_document": DOCUMENT, "target_type": "device",
        "target_devices": [str(devices[0])], "execution_type": "continuous"}, status=400)
    assert "execution_type" in body["errors"]


def test_a_later_start_is_scheduled_and_the_trail_says_so(client, admin_headers,
                                                          viewer_headers, devices):
    start = (datetime.now(UTC) + timedelta(hours=2)).isoformat()
    job = execute(client, admin_headers,
                  custom_job(scheduling_config={"start_time": start}))["job"]
    assert job["status"] == "SCHEDULED"
    shown = execution(client, admin_headers, job["job_id"])
    assert shown["scheduling_config"]["start_time"].startswith(start[:16])
    assert shown["fanout_status"] == "PENDING"
    trail = client.get(f"/api/v1/jobs/executions/{job['job_id']}/events",
                       headers=viewer_headers).get_json()
    assert [e["action"] for e in trail["events"]] == ["job.created"]
    assert trail["total"] == 1
    past_the_end = client.get(f"/api/v1/jobs/executions/{job['job_id']}/events?offset=5",
                              headers=viewer_headers).get_json()
    assert past_the_end["events"] == [] and past_the_end["total"] == 1


def test_runs_of_a_recurring_job_are_listed(client, admin_headers, devices):
    job = execute(client, admin_headers, custom_job(
        execution_type="recurring", schedule={"cron": "* * * * * */10"}))["job"]
    parent = execution(client, admin_headers, job["job_id"])
    assert parent["status"] == "SCHEDULED"
    recurring.fire_due_runs(datetime.fromisoformat(parent["next_run_at"]))
    runs = client.get(f"/api/v1/jobs/executions/{job['job_id']}/runs",
                      headers=admin_headers).get_json()
    assert runs["total"] == 1
    run = execution(client, admin_headers, runs["runs"][0]["job_id"])
    assert run["parent_job_id"] == job["job_id"]
    assert run["scheduled_for"] == parent["next_run_at"]


def test_events_and_runs_of_an_unknown_job_are_404(client, admin_headers):
    unknown = "00000000-0000-4000-8000-000000000000"
    for what in ("events", "runs"):
        response = client.get(f"/api/v1/jobs/executions/{unknown}/{what}", headers=admin_headers)
        assert response.status_code == 404
        assert response.get_json()["message"] == f"Job execution {unknown} not found"
