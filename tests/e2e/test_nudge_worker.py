"""A device subscribed on its MQTT topic hears of a new job from the worker's fan-out, and of a
continuous job it joins when it is registered."""

from __future__ import annotations

from dataclasses import replace

import pytest
from job_rows import quietly
from json_http import JsonHttp
from mqtt_listener import MQTT_URL, NudgeListener, nudge_topic

from dispatcher.fleet.devices import register_device
from dispatcher.jobs.create import create_execution
from dispatcher.sender import deliver

pytestmark = pytest.mark.slow

DIAGNOSTIC = {
    "version": "1.0",
    "steps": [{"name": "Check disk space", "type": "runCommand", "input": {"command": "df,-h"}}],
}


def test_the_fan_out_nudges_each_new_device_row(app, settings, server_processes):
    nudging = replace(settings, mqtt_url=MQTT_URL)
    server_processes.start_worker(nudging)
    chosen = [quietly(register_device(f"pi-{i}", "raspberry-pi"))[0]["uuid"]
              for i in range(2)]
    quietly(register_device("not-chosen", "raspberry-pi"))
    with NudgeListener() as listener:
        job = deliver(create_execution({
            "job_name": "Custom diagnostic", "job_document": DIAGNOSTIC,
            "target_type": "device", "target_devices": chosen,
        }, "admin:test", nudging), nudging)
        received = listener.wait_for(2, job["job_id"], timeout_s=30)
    expected = {"jobId": str(job["job_id"]), "event": "queued"}
    assert sorted(received) == sorted((nudge_topic(d), expected, 1) for d in chosen)


def test_a_device_registered_into_a_continuous_job_is_nudged(
    app, settings, server_processes, admin_headers
):
    """Registering a device that matches a continuous job gives it a row and an MQTT nudge
    at once, through the API as an operator registers one, not at the next full reconcile."""
    nudging = replace(settings, mqtt_url=MQTT_URL)
    server_processes.start_worker(nudging)
    api = JsonHttp(server_processes.start_api(nudging).url)
    first = quietly(register_device("first-pi", "raspberry-pi", {"site": "lab"}))[0]
    with NudgeListener() as listener:
        job = deliver(create_execution({
            "job_name": "Keep the lab tidy", "job_document": DIAGNOSTIC, "target_type": "group",
            "target_filter": {"site": "lab"}, "execution_type": "continuous",
        }, "admin:test", nudging), nudging)
        # The fan-out's own nudge to the first device is published after its commit: wait for
        # it, so that the only nudge still to come is the newcomer's.
        assert len(listener.wait_for(1, job["job_id"], timeout_s=30)) == 1
        status, newcomer = api.request("POST", "/api/v1/devices", {
            "device_name": "new-pi", "attributes": {"site": "lab"}}, admin_headers)
        assert status == 201
        received = listener.wait_for(2, job["job_id"], timeout_s=30)
    expected = {"jobId": str(job["job_id"]), "event": "queued"}
    assert received == [(nudge_topic(first["uuid"]), expected, 1),
                        (nudge_topic(newcomer["uuid"]), expected, 1)]
