"""The Python client (``client.DeviceJobsClient``) against the real API under gunicorn, with a
Celery worker fanning out; devices report through the device protocol with their own tokens."""

from __future__ import annotations

import pytest
from json_http import JsonHttp
from processes import free_port, wait_until
from suite_constants import TEST_ADMIN_TOKEN

from client import ApiError, DeviceJobsClient, ServerUnreachable, Target, execute_body

pytestmark = pytest.mark.slow

DOCUMENT = {"version": "1.0", "includeStdOut": True, "steps": [
    {"name": "Greet", "type": "runCommand", "input": {"command": "echo,{{WHO}}"}}]}
TEMPLATE = {"name": "greet", "category": "maintenance", "parameters": {"WHO": "world"},
            "job_document": DOCUMENT}
EVERY_POLICY = {
    "rollout_config": {"maximum_per_minute": 100},
    "abort_config": {"criteria_list": [{"failure_type": "FAILED", "action": "CANCEL",
                                        "threshold_percentage": 50.0,
                                        "min_number_of_executed_devices": 2}]},
    "timeout_config": {"in_progress_timeout_minutes": 30},
    "retry_config": {"criteria_list": [{"failure_type": "ALL", "number_of_retries": 2}]},
    "scheduling_config": {"end_time": "2999-01-01T00:00:00+00:00", "end_behavior": "CANCEL",
                          "timezone": "UTC"},
}


@pytest.fixture
def api(settings, server_processes) -> DeviceJobsClient:
    server_processes.start_worker(settings)
    return DeviceJobsClient(server_processes.start_api(settings).url, TEST_ADMIN_TOKEN)


def report(api: DeviceJobsClient, device: dict, job_id: str, status: str, **fields) -> None:
    """What an agent would send, with the device's own token."""
    with JsonHttp(api.url) as http:
        code, body = http.request(
            "PATCH", f"/api/v1/devices/{device['uuid']}/jobs/{job_id}/status",
            {"status": status, **fields}, {"Authorization": f"Bearer {device['device_token']}"})
    assert code == 200, body


def fanned_out(api: DeviceJobsClient, job_id: str, count: int) -> list[dict]:
    return wait_until(lambda: len(rows := list(api.iter_execution_devices(job_id))) == count
                      and rows, 30, f"{count} device rows")


def test_templates_handlers_and_devices_round_trip_and_apply_is_idempotent(api):
    assert api.apply_template(TEMPLATE)[0] == "created"
    outcome, template = api.apply_template(TEMPLATE)
    assert outcome == "unchanged" and template["changed"] == {}
    assert api.apply_template({**TEMPLATE, "description": "says hello"})[0] == "updated"
    assert api.find_template("greet")["description"] == "says hello"
    assert api.get_template(template["id"])["name"] == "greet"
    assert [t["name"] for t in api.iter_templates(category="maintenance")] == ["greet"]

    handler = {"name": "hello.sh", "script_type": "bash", "script_content": "echo hi\n"}
    assert api.apply_handler(handler)[0] == "created"
    assert api.apply_handler(handler)[0] == "unchanged"
    assert api.apply_handler({**handler, "script_content": "echo bye\n"})[0] == "updated"
    assert [h["name"] for h in api.iter_handlers()] == ["hello.sh"]

    device = api.create_device({"device_name": "pi-1", "device_type": "pi",
                                "attributes": {"rack": "r1"}})
    api.create_device({"device_name": "pi-2", "device_type": "pi", "attributes": {"rack": "r2"}})
    assert [d["device_name"] for d in api.iter_devices("pi", {"rack": "r1"})] == ["pi-1"]
    assert api.get_handler("hello.sh")["script_content"] == "echo bye\n"
    assert api.update_device(device["uuid"], {"device_name": "pi-one"})["changed"]
    assert api.rotate_device_token(device["uuid"])["device_token"] != device["device_token"]
    api.delete_handler("hello.sh")
    api.delete_template(template["id"])
    assert api.list_templates()["total"] == 0
    api.delete_device(device["uuid"])
    with pytest.raises(ApiError) as caught:
        api.get_device(device["uuid"])
    assert caught.value.status == 404


def test_every_target_kind_and_policy_field_reaches_the_execution(api):
    pis = [api.create_device({"device_name": f"pi-{i}", "device_type": "pi"}) for i in range(2)]
    api.create_device({"device_name": "gw", "device_type": "gateway"})
    template_id = api.create_template(TEMPLATE)["id"]

    by_device = api.execute(execute_body(Target.devices([pis[0]["uuid"]]),
                                         template_id=template_id, parameters={"WHO": "pi"}))
    by_group = api.execute(execute_body(Target.group({"device_type": "pi"}),
                                        template_id=template_id, policies=EVERY_POLICY))
    on_all = api.execute(execute_body(Target.all(), job_document=DOCUMENT, job_name="custom",
                                      parameters={"WHO": "all"}, created_by="pipeline"))
    assert [j["job"]["total_devices"] for j in (by_device, by_group, on_all)] == [1, 2, 3]
    grouped = api.get_execution(by_group["job"]["job_id"])["job"]
    for name, value in EVERY_POLICY.items():
        assert grouped[name] == value, name
    assert grouped["target_filter"] == {"device_type": "pi"}
    custom = api.get_execution(on_all["job"]["job_id"])["job"]
    assert custom["created_by"] == "pipeline"
    assert custom["job_document"]["steps"][0]["input"]["command"] == "echo,all"
    assert api.execute(execute_body(Target.all(), template_id=template_id, policies={
        "execution_type": "recurring", "schedule": {"cron": "0 3 * * *"}}))["job"][
            "execution_type"] == "recurring"
    assert api.execute(execute_body(Target.group({"device_type": "pi"}), template_id=template_id,
                                    policies={"execution_type": "continuous"}))["job"][
            "execution_type"] == "continuous"
    listed = api.list_executions(limit=2)
    assert listed["total"] == 5 and len(listed["executions"]) == 2
    preview = api.preview(execute_body(Target.group({"device_type": "pi"}),
                                       template_id=template_id))
    assert preview["total_devices"] == 2 and api.list_executions()["total"] == 5


def test_following_cancelling_and_retrying_jobs_and_single_devices(api):
    devices = [api.create_device({"device_name": f"pi-{i}", "device_type": "pi"})
               for i in range(3)]
    job_id = api.execute(execute_body(Target.all(), job_document=DOCUMENT, job_name="j",
                                      parameters={"WHO": "x"}))["job"]["job_id"]
    fanned_out(api, job_id, 3)
    page = api.execution_devices(job_id, limit=2)
    assert page["total"] == 3 and len(page["device_statuses"]) == 2
    report(api, devices[0], job_id, "IN_PROGRESS")
    report(api, devices[0], job_id, "FAILED", exit_code=3, stdout="boom")
    assert [r["status"] for r in api.execution_devices(job_id, status="FAILED")[
        "device_statuses"]] == ["FAILED"]
    assert api.retry_device(job_id, devices[0]["uuid"])["execution_number"] == 2
    assert api.cancel_device(job_id, devices[1]["uuid"])["status"] == "CANCELED"
    first = next(r for r in api.iter_device_jobs(devices[0]["uuid"]))
    assert first["job_id"] == job_id and first["status"] == "QUEUED"
    canceled = api.cancel(job_id, force=True, reason="enough")
    assert canceled["job"]["status"] == "CANCELED"
    actions = [e["action"] for e in api.iter_job_events(job_id)]
    assert "job.created" in actions and len(actions) == api.job_events(job_id)["total"]
    assert api.job_runs(job_id)["runs"] == []
    with pytest.raises(ApiError) as caught:
        api.retry(job_id)
    assert caught.value.status == 409


def test_errors_carry_the_api_error_body(api, viewer_headers):
    with pytest.raises(ApiError) as caught:
        api.execute({"target_type": "all", "job_document": DOCUMENT})
    error = caught.value
    assert error.status == 400 and "job_name" in error.errors
    assert ("job_name", "A custom job_document needs a job_name.") in error.field_errors
    with pytest.raises(ApiError) as caught:
        api.execute(execute_body(Target.all(), job_document=DOCUMENT, job_name="x",
                                 policies={"rollout_config": {"maximum_per_minute": 0}}))
    assert caught.value.field_errors[0][0] == "rollout_config.maximum_per_minute"
    with pytest.raises(ApiError) as caught:
        DeviceJobsClient(api.url, "wrong").list_templates()
    assert caught.value.status == 401 and caught.value.message == "Invalid or revoked token"
    viewer = DeviceJobsClient(api.url, viewer_headers["Authorization"].split()[1])
    assert viewer.list_templates()["total"] == 0
    with pytest.raises(ApiError) as caught:
        viewer.create_template(TEMPLATE)
    assert caught.value.status == 403
    with pytest.raises(ServerUnreachable) as unreachable:
        DeviceJobsClient(f"http://127.0.0.1:{free_port()}", "t").list_templates()
    assert "cannot reach the API" in str(unreachable.value)
