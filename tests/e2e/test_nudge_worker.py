"""A device subscribed on its MQTT topic hears of a new job from the worker's fan-out."""

from __future__ import annotations

from dataclasses import replace

import pytest
from mqtt_listener import MQTT_URL, NudgeListener, nudge_topic

from dispatcher.devices import register_device
from dispatcher.executions import create_execution

pytestmark = pytest.mark.slow

DIAGNOSTIC = {
    "version": "1.0",
    "steps": [{"name": "Check disk space", "type": "runCommand", "input": {"command": "df,-h"}}],
}


def test_the_fan_out_nudges_each_new_device_row(app, settings, server_processes):
    nudging = replace(settings, mqtt_url=MQTT_URL)
    server_processes.start_worker(nudging)
    chosen = [register_device(f"pi-{i}", "raspberry-pi")[0]["uuid"] for i in range(2)]
    register_device("not-chosen", "raspberry-pi")
    with NudgeListener() as listener:
        job = create_execution({
            "job_name": "Custom diagnostic", "job_document": DIAGNOSTIC,
            "target_type": "device", "target_devices": chosen,
        }, "admin:test", nudging)
        received = listener.wait_for(2, job["job_id"], timeout_s=30)
    expected = {"jobId": str(job["job_id"]), "event": "queued"}
    assert sorted(received) == sorted((nudge_topic(d), expected, 1) for d in chosen)
