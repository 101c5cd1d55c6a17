"""A device-side MQTT subscriber for tests: hears the nudges on ``devices/+/jobs/notify``."""

from __future__ import annotations

import json
import threading
import uuid

import paho.mqtt.client as mqtt

MQTT_URL = "mqtt://127.0.0.1:1883"
RECEIVE_TIMEOUT_S = 10.0


def nudge_topic(device_uuid) -> str:
    return f"devices/{device_uuid}/jobs/notify"


class NudgeListener:
    """A device-side subscriber on ``devices/+/jobs/notify`` that collects what it hears.

    The broker is shared with whatever else runs on this machine, so reads are by job id:
    ``heard(job_id)`` and ``wait_for(count, job_id)`` see only that job's nudges.
    """

    def __init__(self) -> None:
        self.received: list[tuple[str, dict, int]] = []
        self._changed = threading.Condition()
        self._subscribed = threading.Event()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2,
                                  client_id=f"listener-{uuid.uuid4().hex[:8]}")
        self.client.on_connect = lambda c, *_: c.subscribe("devices/+/jobs/notify", qos=1)
        self.client.on_subscribe = lambda *_: self._subscribed.set()
        self.client.on_message = self._on_message

    def _on_message(self, client, userdata, message) -> None:
        with self._changed:
            self.received.append((message.topic, json.loads(message.payload), message.qos))
            self._changed.notify_all()

    def __enter__(self) -> NudgeListener:
        self.client.connect("127.0.0.1", 1883)
        self.client.loop_start()
        assert self._subscribed.wait(RECEIVE_TIMEOUT_S), "listener could not subscribe"
        return self

    def __exit__(self, *exc_info) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def heard(self, job_id) -> list[tuple[str, dict, int]]:
        """(topic, payload, qos) of every nudge about ``job_id`` so far."""
        with self._changed:
            return [m for m in self.received if m[1].get("jobId") == str(job_id)]

    def wait_for(self, count: int, job_id, timeout_s: float = RECEIVE_TIMEOUT_S) -> list:
        """The nudges about ``job_id`` once there are ``count`` (or all there are at timeout)."""
        with self._changed:
            self._changed.wait_for(lambda: len(self.heard(job_id)) >= count, timeout_s)
        return self.heard(job_id)
