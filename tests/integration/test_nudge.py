"""MQTT nudges against the real Mosquitto: who gets one, what it says, and a broker that is gone."""

from __future__ import annotations

import time
import uuid
from dataclasses import replace

import pytest
from job_rows import bulk_register_devices
from mqtt_listener import MQTT_URL, NudgeListener, nudge_topic

from dispatcher import db, nudges
from dispatcher.outcome import Outcome
from dispatcher.sender import RecordingSender, carry_out

CLOSED_PORT_MQTT_URL = "mqtt://127.0.0.1:1"


@pytest.fixture
def mqtt_settings(settings):
    return replace(settings, mqtt_url=MQTT_URL)


def test_each_device_hears_the_job_on_its_own_topic(app, mqtt_settings):
    job_id = uuid.uuid4()
    devices = [uuid.uuid4() for _ in range(3)]
    with NudgeListener() as listener:
        assert nudges.nudge_devices(mqtt_settings, job_id, "queued", devices) == 3
        received = listener.wait_for(3, job_id)
    assert sorted(received) == sorted(
        (nudge_topic(d), {"jobId": str(job_id), "event": "queued"}, 1) for d in devices)


def test_without_a_device_list_the_devices_in_the_events_status_are_nudged(app, mqtt_settings):
    bulk_register_devices(4)
    job_id = uuid.uuid4()
    with db.pool().connection() as conn:
        conn.execute("INSERT INTO job_executions (job_id, job_name, job_document, target_type,"
                     " fanout_status) VALUES (%s, 'cancel me', '{}', 'all', 'DONE')", (job_id,))
        conn.execute("INSERT INTO device_job_status (job_id, device_uuid, status)"
                     " SELECT %s, uuid, CASE WHEN row_number() OVER (ORDER BY uuid) <= 3"
                     " THEN 'CANCELED' ELSE 'SUCCEEDED' END FROM devices", (job_id,))
        canceled = [r["device_uuid"] for r in conn.execute(
            "SELECT device_uuid FROM device_job_status WHERE job_id = %s AND status ="
            " 'CANCELED'", (job_id,))]
    with NudgeListener() as listener:
        assert nudges.nudge_devices(mqtt_settings, job_id, "canceled") == 3
        received = listener.wait_for(3, job_id)
        time.sleep(0.3)  # nothing more arrives for the device that was not canceled
        assert len(listener.heard(job_id)) == 3
    assert sorted(t for t, _, _ in received) == sorted(nudge_topic(d) for d in canceled)
    assert {p["event"] for _, p, _ in received} == {"canceled"}


def test_devices_whose_row_a_rollout_still_holds_back_are_not_nudged(app, mqtt_settings):
    bulk_register_devices(3)
    job_id = uuid.uuid4()
    with db.pool().connection() as conn:
        conn.execute("INSERT INTO job_executions (job_id, job_name, job_document, target_type,"
                     " fanout_status) VALUES (%s, 'slow rollout', '{}', 'all', 'DONE')",
                     (job_id,))
        conn.execute("INSERT INTO device_job_status (job_id, device_uuid, released_at)"
                     " SELECT %s, uuid, CASE WHEN row_number() OVER (ORDER BY uuid) = 1"
                     " THEN now() END FROM devices", (job_id,))
        released = conn.execute("SELECT device_uuid FROM device_job_status WHERE job_id = %s"
                                " AND released_at IS NOT NULL", (job_id,)).fetchone()
    with NudgeListener() as listener:
        assert nudges.nudge_devices(mqtt_settings, job_id, "queued") == 1
        received = listener.wait_for(1, job_id)
    assert [topic for topic, _, _ in received] == [nudge_topic(released["device_uuid"])]


def test_a_large_batch_is_delivered_in_full(app, mqtt_settings):
    job_id = uuid.uuid4()
    devices = [uuid.uuid4() for _ in range(2 * nudges.PUBLISH_BATCH_SIZE + 7)]
    with NudgeListener() as listener:
        assert nudges.nudge_devices(mqtt_settings, job_id, "queued", devices) == len(devices)
        assert len(listener.wait_for(len(devices), job_id)) == len(devices)


def test_nudges_are_off_without_mqtt_url(app, settings):
    assert settings.mqtt_url == ""
    assert nudges.nudge_devices(settings, uuid.uuid4(), "queued", [uuid.uuid4()]) == 0
    sender = RecordingSender()
    outcome = Outcome(job_nudges={(uuid.uuid4(), "queued")})
    outcome.nudge(uuid.uuid4(), "queued", [uuid.uuid4()])
    carry_out(outcome, settings, sender)
    assert sender.sent == []


def test_an_unreachable_broker_skips_the_nudges_without_failing(app, settings, caplog):
    unreachable = replace(settings, mqtt_url=CLOSED_PORT_MQTT_URL)
    for wait_s in (nudges.CONNECT_TIMEOUT_S, nudges.RECONNECT_WAIT_S):
        started = time.monotonic()
        assert nudges.nudge_devices(unreachable, uuid.uuid4(), "queued", [uuid.uuid4()]) == 0
        # The first nudge waits for a connection; later ones, with the broker still down,
        # give up almost at once.
        assert time.monotonic() - started < wait_s + 1
    assert "nudges skipped" in caplog.text


def test_an_unknown_event_is_a_programming_error(app, mqtt_settings):
    with pytest.raises(ValueError):
        carry_out(Outcome(job_nudges={(uuid.uuid4(), "exploded")}), mqtt_settings,
                  RecordingSender())
    with pytest.raises(ValueError):
        nudges.nudge_devices(mqtt_settings, uuid.uuid4(), "exploded", [])
