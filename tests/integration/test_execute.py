"""POST /api/v1/jobs/execute with every body form of the product guide, and its refusals."""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import UTC, datetime

import pytest
from job_rows import quietly, target_events
from job_templates import RESTART_TEMPLATE as SHARED_RESTART_TEMPLATE

from dispatcher import db
from dispatcher.config import Settings
from dispatcher.fleet.devices import register_device
from dispatcher.maintenance.stalled_fanouts import resume_stalled_fanouts
from dispatcher.outcome import Outcome
from dispatcher.sender import carry_out

EXECUTE = "/api/v1/jobs/execute"
TEMPLATES = "/api/v1/jobs/templates"
CLOSED_PORT_BROKER = "redis://127.0.0.1:1/0"

RESTART_TEMPLATE = {**SHARED_RESTART_TEMPLATE, "parameters": {"SERVICE_NAME": "nginx"}}
DIAGNOSTIC = {
    "version": "1.0",
    "includeStdOut": True,
    "steps": [{"name": "Check disk space", "type": "runCommand", "input": {"command": "df,-h"}}],
}


def execution_row(job_id) -> dict:
    with db.pool().connection() as conn:
        return conn.execute("SELECT * FROM job_executions WHERE job_id = %s",
                            (job_id,)).fetchone()


def create_template(client, headers, **overrides) -> int:
    response = client.post(TEMPLATES, json={**RESTART_TEMPLATE, **overrides}, headers=headers)
    assert response.status_code == 201, response.get_json()
    return response.get_json()["id"]


def execute(client, headers, body: dict, status: int = 201) -> dict:
    response = client.post(EXECUTE, json=body, headers=headers)
    assert response.status_code == status, response.get_json()
    return response.get_json()


@pytest.fixture
def fleet(app) -> dict[str, list[uuid.UUID]]:
    """Three production Pis, one staging Pi, two production gateways."""
    def add(n: int, device_type: str, environment: str) -> list[uuid.UUID]:
        return [quietly(register_device(f"{device_type}-{environment}-{i}", device_type,
                                {"environment": environment}))[0]["uuid"]
                for i in range(n)]

    return {
        "pi_production": add(3, "raspberry-pi", "production"),
        "pi_staging": add(1, "raspberry-pi", "staging"),
        "gateway_production": add(2, "gateway", "production"),
    }


def test_template_on_a_single_device(client, admin_headers, fleet):
    template_id = create_template(client, admin_headers)
    device = fleet["pi_production"][0]
    answer = execute(client, admin_headers, {
        "job_name": "Restart nginx on Device A", "template_id": template_id,
        "target_type": "device", "target_devices": [str(device)], "created_by": "admin",
    })
    job = answer["job"]
    assert answer["message"] == "Job created and queued for 1 device(s)"
    assert job["job_name"] == "Restart nginx on Device A"
    assert job["status"] == "QUEUED"
    assert job["total_devices"] == 1
    assert job["created_by"] == "admin"
    assert {"job_id", "queued_at"} <= job.keys()
    row = execution_row(job["job_id"])
    assert row["target_devices"] == [device]
    assert row["template_id"] == template_id
    # The template's declared default fills its placeholder.
    assert row["job_document"]["steps"][0]["input"]["command"] == "systemctl,restart,nginx"
    assert row["fanout_status"] == "PENDING"
    assert row["fanout_enqueued_at"] is not None


def test_template_on_all_devices(client, admin_headers, fleet):
    template_id = create_template(client, admin_headers)
    answer = execute(client, admin_headers, {
        "job_name": "Health check all devices", "template_id": template_id,
        "target_type": "all", "created_by": "admin",
    })
    assert answer["job"]["total_devices"] == 6
    assert answer["message"] == "Job created and queued for 6 device(s)"


@pytest.mark.parametrize(("target_filter", "expected"), [
    ({"device_type": "raspberry-pi"}, 4),
    ({"device_type": "raspberry-pi", "environment": "production"}, 3),
    ({"environment": "production"}, 5),
])
def test_template_on_a_filtered_group(client, admin_headers, fleet, target_filter, expected):
    template_id = create_template(client, admin_headers)
    answer = execute(client, admin_headers, {
        "job_name": "Update Raspberry Pi devices", "template_id": template_id,
        "target_type": "group", "target_filter": target_filter, "created_by": "admin",
    })
    assert answer["job"]["total_devices"] == expected
    assert answer["job"]["target_filter"] == target_filter


def test_custom_job_document_without_template(client, admin_headers, fleet):
    device = fleet["pi_staging"][0]
    answer = execute(client, admin_headers, {
        "job_name": "Custom diagnostic", "job_document": DIAGNOSTIC,
        "target_type": "device", "target_devices": [str(device)],
    })
    job = answer["job"]
    assert job["template_id"] is None
    # Without created_by, the execution is attributed to the caller's token.
    assert job["created_by"] == "admin:bootstrap (ADMIN_TOKEN)"
    stored = execution_row(job["job_id"])["job_document"]
    assert stored["steps"][0]["input"] == {"command": "df,-h"}
    assert stored["steps"][0]["allowStdErr"] is False  # canonical form


def test_parameters_are_rendered_into_the_document(client, admin_headers, fleet):
    template_id = create_template(client, admin_headers)
    job = execute(client, admin_headers, {
        "job_name": "Restart a service", "template_id": template_id, "target_type": "all",
        "parameters": {"SERVICE_NAME": "mosquitto,--force"},
    })["job"]
    command = execution_row(job["job_id"])["job_document"]["steps"][0]["input"]["command"]
    # One parameter stays one argument: its comma is escaped.
    assert command == "systemctl,restart,mosquitto\\,--force"


def test_missing_parameters_are_each_named(client, admin_headers, fleet):
    document = {"version": "1.0", "steps": [{
        "name": "Copy", "type": "runCommand", "input": {"command": "cp,{{SOURCE}},{{TARGET}}"},
    }]}
    template_id = create_template(client, admin_headers, name="copy", job_document=document,
                                  parameters={"SOURCE": None, "TARGET": None})
    body = execute(client, admin_headers, {
        "job_name": "Copy a file", "template_id": template_id, "target_type": "all",
    }, status=400)
    assert set(body["errors"]["parameters"]) == {"SOURCE", "TARGET"}
    assert "SOURCE" in body["message"] and "TARGET" in body["message"]


def test_every_execution_is_audited_with_its_job(client, admin_headers, fleet):
    job = execute(client, admin_headers, {
        "job_name": "Custom diagnostic", "job_document": DIAGNOSTIC, "target_type": "all",
    })["job"]
    events = target_events("job", job["job_id"])
    assert [e["action"] for e in events] == ["job.created"]
    assert str(events[0]["job_id"]) == job["job_id"]
    assert events[0]["details"]["total_devices"] == 6


def test_inactive_template_is_refused(client, admin_headers, fleet):
    template_id = create_template(client, admin_headers, is_active=False)
    body = execute(client, admin_headers, {
        "job_name": "Restart", "template_id": template_id, "target_type": "all",
    }, status=409)
    assert "inactive" in body["message"]


def test_unknown_template_is_not_found(client, admin_headers, fleet):
    body = execute(client, admin_headers, {
        "job_name": "Restart", "template_id": 999, "target_type": "all",
    }, status=404)
    assert "999" in body["message"]


def test_unknown_devices_are_named(client, admin_headers, fleet):
    known = fleet["pi_production"][0]
    strangers = [uuid.uuid4(), uuid.uuid4()]
    body = execute(client, admin_headers, {
        "job_name": "Custom diagnostic", "job_document": DIAGNOSTIC, "target_type": "device",
        "target_devices": [str(known), *map(str, strangers)],
    }, status=400)
    assert body["unknown_devices"] == [str(u) for u in strangers]
    for stranger in strangers:
        assert str(stranger) in body["message"]
    assert str(known) not in body["message"]


def test_duplicate_devices_count_once(client, admin_headers, fleet):
    device = str(fleet["pi_production"][0])
    job = execute(client, admin_headers, {
        "job_name": "Custom diagnostic", "job_document": DIAGNOSTIC, "target_type": "device",
        "target_devices": [device, device],
    })["job"]
    assert job["total_devices"] == 1


@pytest.mark.parametrize(("target", "field"), [
    ({"target_type": "group", "target_filter": {"environment": "nowhere"}}, "target_filter"),
    ({"target_type": "group", "target_filter": {}}, "target_filter"),
    ({"target_type": "group"}, "target_filter"),
    ({"target_type": "device"}, "target_devices"),
    ({"target_type": "device", "target_devices": []}, "target_devices"),
    ({"target_type": "device", "target_devices": ["not-a-uuid"]}, "target_devices"),
    ({"target_type": "all", "target_filter": {"environment": "production"}}, "target_filter"),
    ({"target_type": "group", "target_filter": {"device_type": 7}}, "target_filter"),
    ({"target_type": "everything"}, "target_type"),
    ({}, "target_type"),
])
def test_targets_that_reach_no_device_or_do_not_fit_are_refused(
    client, admin_headers, fleet, target, field
):
    body = execute(client, admin_headers, {
        "job_name": "Custom diagnostic", "job_document": DIAGNOSTIC, **target,
    }, status=400)
    assert field in body["errors"]


def test_all_devices_of_an_empty_fleet_is_refused(client, admin_headers):
    body = execute(client, admin_headers, {
        "job_name": "Custom diagnostic", "job_document": DIAGNOSTIC, "target_type": "all",
    }, status=400)
    assert "No devices" in body["message"]


@pytest.mark.parametrize(("document_fields", "field"), [
    ({"template_id": 1, "job_document": DIAGNOSTIC}, "job_document"),
    ({}, "template_id"),
    ({"job_document": {"version": "1.0", "steps": []}}, "job_document"),
    ({"job_document": {"version": "1.0", "steps": [{"name": "x", "type": "runCommand",
                                                    "input": {}}]}}, "job_document"),
    ({"job_document": DIAGNOSTIC, "job_name": None}, "job_name"),
    ({"job_document": DIAGNOSTIC, "unexpected": 1}, "unexpected"),
    ({"job_document": DIAGNOSTIC, "parameters": {"UNUSED": "x"}}, "parameters"),
])
def test_document_problems_name_the_field(client, admin_headers, fleet, document_fields, field):
    body = {"job_name": "Custom diagnostic", "target_type": "all", **document_fields}
    if body["job_name"] is None:
        del body["job_name"]
    answer = execute(client, admin_headers, body, status=400)
    assert field in answer["errors"]


def test_viewers_and_strangers_cannot_execute(client, viewer_headers, fleet):
    body = {"job_name": "Custom diagnostic", "job_document": DIAGNOSTIC, "target_type": "all"}
    assert client.post(EXECUTE, json=body, headers=viewer_headers).status_code == 403
    assert client.post(EXECUTE, json=body).status_code == 401


def test_broker_down_still_creates_the_job_and_the_sweeper_enqueues_it(
    settings, admin_headers, fleet
):
    from api.app import create_app

    broker_down = replace(settings, celery_broker_url=CLOSED_PORT_BROKER)
    client = create_app(broker_down).test_client()
    job = execute(client, admin_headers, {
        "job_name": "Custom diagnostic", "job_document": DIAGNOSTIC, "target_type": "all",
    })["job"]
    assert job["total_devices"] == 6
    assert execution_row(job["job_id"])["fanout_enqueued_at"] is None

    # The sweeper finds it; with the broker still down it leaves it for next time.
    stalled = stalled_now(0)
    assert stalled.fan_outs == [uuid.UUID(job["job_id"])]
    carry_out(stalled, broker_down)
    assert execution_row(job["job_id"])["fanout_enqueued_at"] is None
    # With the broker back, it enqueues the fan-out and records that it did.
    carry_out(stalled_now(0), settings)
    assert execution_row(job["job_id"])["fanout_enqueued_at"] is not None
    # Recently enqueued: not enqueued again until the stall threshold passes.
    assert stalled_now(60).fan_outs == []


def stalled_now(after_s: int) -> Outcome:
    """What the stalled fan-out sweep finds now, with fan-outs stalled after ``after_s``."""
    return resume_stalled_fanouts(datetime.now(UTC), Settings(fanout_stalled_after_s=after_s))
