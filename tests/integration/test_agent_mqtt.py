"""The agent's MQTT nudge listener against real Mosquitto brokers."""

from __future__ import annotations

import json
import queue
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator

import paho.mqtt.client as mqtt
import paho.mqtt.publish as publish
import pytest

from agent.mqtt_listener import NotifyListener, notify_topic

SHARED_BROKER = ("127.0.0.1", 1883)

pytestmark = pytest.mark.skipif(shutil.which("mosquitto") is None,
                                reason="mosquitto is not installed: run deploy/services.sh")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_broker(port: int) -> subprocess.Popen:
    broker = subprocess.Popen(["mosquitto", "-p", str(port)], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return broker
        except OSError:
            time.sleep(0.05)
    broker.kill()
    raise RuntimeError("mosquitto did not start")


@pytest.fixture
def nudges() -> queue.Queue:
    return queue.Queue()


@pytest.fixture
def device_uuid() -> str:
    return str(uuid.uuid4())


def listening(url: str, device_uuid: str, nudges: queue.Queue) -> NotifyListener:
    listener = NotifyListener(url, device_uuid, lambda event, job: nudges.put((event, job)))
    listener.start()
    first = nudges.get(timeout=10)
    assert first == ("connected", None)
    return listener


def publish_nudge(host: str, port: int, device_uuid: str, payload: bytes) -> None:
    publish.single(notify_topic(device_uuid), payload, qos=1, hostname=host, port=port,
                   protocol=mqtt.MQTTv311)


@pytest.fixture
def listener(device_uuid, nudges) -> Iterator[NotifyListener]:
    listener = listening(f"mqtt://{SHARED_BROKER[0]}:{SHARED_BROKER[1]}", device_uuid, nudges)
    yield listener
    listener.stop()


def test_a_nudge_published_for_the_device_arrives_with_its_event_and_job(
    listener, device_uuid, nudges
):
    job_id = str(uuid.uuid4())
    publish_nudge(*SHARED_BROKER, device_uuid, json.dumps({"jobId": job_id,
                                                           "event": "canceled"}).encode())
    assert nudges.get(timeout=5) == ("canceled", job_id)
    assert listener.connected


def test_another_devices_nudges_are_not_heard(listener, device_uuid, nudges):
    publish_nudge(*SHARED_BROKER, str(uuid.uuid4()), b'{"jobId": "x", "event": "queued"}')
    publish_nudge(*SHARED_BROKER, device_uuid, b'{"jobId": "mine", "event": "queued"}')
    assert nudges.get(timeout=5) == ("queued", "mine")
    assert nudges.empty()


def test_an_unreadable_nudge_still_means_poll_now(listener, device_uuid, nudges):
    publish_nudge(*SHARED_BROKER, device_uuid, b"\xff not json")
    assert nudges.get(timeout=5) == ("unknown", None)


def test_a_job_queued_the_moment_the_listener_says_connected_is_still_nudged(device_uuid):
    # "connected" makes the agent poll once; a job queued right after that poll must be
    # nudged, so the subscription has to be in place before "connected" is said.
    heard: queue.Queue = queue.Queue()

    def on_nudge(event: str, job_id: str | None) -> None:
        if event == "connected":
            publish_nudge(*SHARED_BROKER, device_uuid, b'{"jobId": "next", "event": "queued"}')
        heard.put((event, job_id))

    listener = NotifyListener(f"mqtt://{SHARED_BROKER[0]}:{SHARED_BROKER[1]}", device_uuid,
                              on_nudge)
    listener.start()
    try:
        assert heard.get(timeout=10) == ("connected", None)
        assert listener.connected
        assert heard.get(timeout=5) == ("queued", "next")
    finally:
        listener.stop()


def test_the_listener_reconnects_when_the_broker_comes_back(device_uuid, nudges):
    port = free_port()
    broker = start_broker(port)
    listener = listening(f"mqtt://127.0.0.1:{port}", device_uuid, nudges)
    try:
        broker.terminate()
        broker.wait(5)
        deadline = time.monotonic() + 5
        while listener.connected and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not listener.connected
        broker = start_broker(port)
        assert nudges.get(timeout=15) == ("connected", None)
        publish_nudge("127.0.0.1", port, device_uuid, b'{"jobId": "j", "event": "queued"}')
        assert nudges.get(timeout=5) == ("queued", "j")
    finally:
        listener.stop()
        broker.terminate()
        broker.wait(5)
