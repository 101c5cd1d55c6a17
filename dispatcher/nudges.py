"""MQTT nudges: ``{"jobId", "event"}`` on ``devices/{uuid}/jobs/notify`` tells a device to poll now.

A nudge is a hint. Polling alone delivers every job, so when the broker is unreachable nudges
are skipped and logged, never retried and never allowed to fail a task.

Each process holds one long-lived connection, opened on first use (so after a Celery worker
forks its children) and kept up by paho's network thread, which reconnects on its own.
Messages go out at QoS 1 in batches: a batch is handed to paho at once, then its broker
acknowledgements are awaited, so thousands of nudges take round trips in the tens, not the
thousands.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
import threading
import time
import uuid
from collections.abc import Iterable, Iterator
from urllib.parse import urlsplit

import paho.mqtt.client as mqtt

from dispatcher import db, metrics
from dispatcher.config import Settings
from schemas.nudges import (
    CANCELED_EVENT,
    NUDGE_QOS,
    QUEUED_EVENT,
    notify_topic,
    nudge_payload,
)
from schemas.vocabulary import CANCELED, QUEUED

log = logging.getLogger(__name__)

PUBLISH_BATCH_SIZE = 500
MAX_INFLIGHT_MESSAGES = PUBLISH_BATCH_SIZE
CONNECT_TIMEOUT_S = 3.0
RECONNECT_WAIT_S = 0.5
BATCH_ACK_TIMEOUT_S = 10.0
KEEPALIVE_S = 60
RECONNECT_DELAY_MAX_S = 30
DEVICE_PAGE_SIZE = 5_000
# The latest-row status of the devices an event is about, when no device list is given.
EVENT_STATUS = {QUEUED_EVENT: QUEUED, CANCELED_EVENT: CANCELED}


class NudgePublisher:
    """One MQTT connection that publishes nudges at QoS 1."""

    def __init__(self, mqtt_url: str) -> None:
        parts = urlsplit(mqtt_url)
        if parts.scheme not in ("mqtt", "mqtts", "tcp", "ssl"):
            raise ValueError(f"MQTT_URL must be mqtt://host[:port] or mqtts://…, got {mqtt_url!r}")
        self._tls = parts.scheme in ("mqtts", "ssl")
        self._host = parts.hostname or "127.0.0.1"
        self._port = parts.port or (8883 if self._tls else 1883)
        self._username = parts.username
        self._password = parts.password
        self._connected = threading.Event()
        self._lock = threading.Lock()
        self._client: mqtt.Client | None = None

    def _start(self) -> mqtt.Client:
        client_id = f"device-jobs-{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"
        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id,
                             clean_session=True)
        if self._username:
            client.username_pw_set(self._username, self._password)
        if self._tls:
            client.tls_set()
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.max_inflight_messages_set(MAX_INFLIGHT_MESSAGES)
        client.reconnect_delay_set(min_delay=1, max_delay=RECONNECT_DELAY_MAX_S)
        client.connect_async(self._host, self._port, keepalive=KEEPALIVE_S)
        client.loop_start()
        return client

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            log.warning("mqtt connect refused host=%s reason=%s", self._host, reason_code)
            return
        log.info("mqtt connected host=%s port=%s", self._host, self._port)
        self._connected.set()

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        if self._connected.is_set():
            log.warning("mqtt disconnected host=%s reason=%s", self._host, reason_code)
        self._connected.clear()

    def wait_until_connected(self) -> bool:
        """Connected now, or soon: the first connection gets CONNECT_TIMEOUT_S, later calls
        only RECONNECT_WAIT_S, so a broker that stays down costs each task a moment, not
        seconds (paho keeps reconnecting in the background)."""
        with self._lock:
            first = self._client is None
            if first:
                self._client = self._start()
        return self._connected.wait(CONNECT_TIMEOUT_S if first else RECONNECT_WAIT_S)

    def publish(self, job_id: uuid.UUID | str, event: str,
                device_uuids: Iterable[uuid.UUID | str]) -> int:
        """Publish one nudge per device; return how many the broker acknowledged."""
        payload = nudge_payload(job_id, event)
        acknowledged = 0
        for batch in _batches(device_uuids, PUBLISH_BATCH_SIZE):
            if not self.wait_until_connected():
                log.warning("nudges skipped job_id=%s event=%s reason=broker unreachable "
                            "host=%s port=%s", job_id, event, self._host, self._port)
                metrics.record_nudges(0, len(batch))
                break
            assert self._client is not None
            sent = [self._client.publish(notify_topic(u), payload, qos=NUDGE_QOS) for u in batch]
            batch_acknowledged = _await_acknowledgements(sent, BATCH_ACK_TIMEOUT_S)
            acknowledged += batch_acknowledged
            metrics.record_nudges(batch_acknowledged, len(batch) - batch_acknowledged)
            if batch_acknowledged < len(batch):
                log.warning("nudges unacknowledged job_id=%s event=%s missing=%d", job_id,
                            event, len(batch) - batch_acknowledged)
                break
        return acknowledged

    def close(self) -> None:
        with self._lock:
            if self._client is not None:
                self._client.disconnect()
                self._client.loop_stop()
                self._client = None
            self._connected.clear()


def _batches(items: Iterable, size: int) -> Iterator[list]:
    batch: list = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def _await_acknowledgements(sent: list[mqtt.MQTTMessageInfo], timeout_s: float) -> int:
    deadline = time.monotonic() + timeout_s
    acknowledged = 0
    for info in sent:
        try:
            info.wait_for_publish(max(0.0, deadline - time.monotonic()))
        except (RuntimeError, ValueError):
            continue
        acknowledged += info.is_published()
    return acknowledged


_publishers: dict[str, NudgePublisher] = {}
_publishers_pid = os.getpid()
_publishers_lock = threading.Lock()


def publisher(settings: Settings) -> NudgePublisher | None:
    """This process's publisher for ``settings.mqtt_url``; None when nudges are off."""
    global _publishers_pid
    if not settings.mqtt_url:
        return None
    with _publishers_lock:
        if _publishers_pid != os.getpid():
            # A forked child: the parent's network threads do not exist here.
            _publishers.clear()
            _publishers_pid = os.getpid()
        found = _publishers.get(settings.mqtt_url)
        if found is None:
            found = _publishers[settings.mqtt_url] = NudgePublisher(settings.mqtt_url)
        return found


def nudge_devices(
    settings: Settings,
    job_id: uuid.UUID | str,
    event: str,
    device_uuids: Iterable[uuid.UUID | str] | None = None,
) -> int:
    """Nudge devices about a job; return how many nudges the broker acknowledged.

    ``device_uuids`` None: every device whose latest row of the job is in the event's status,
    read in keyset pages.
    """
    if event not in EVENT_STATUS:
        raise ValueError(f"unknown nudge event {event!r}")
    nudger = publisher(settings)
    if nudger is None:
        return 0
    devices = _job_devices(job_id, EVENT_STATUS[event]) if device_uuids is None else device_uuids
    acknowledged = nudger.publish(job_id, event, devices)
    log.info("nudges published job_id=%s event=%s acknowledged=%d", job_id, event, acknowledged)
    return acknowledged


def _job_devices(job_id: uuid.UUID | str, status: str) -> Iterator[uuid.UUID]:
    after = None
    while True:
        with db.connect() as c:
            rows = c.all_unprepared("nudge_job_devices_page", job_id=job_id, status=status,
                                    after=after, page_size=DEVICE_PAGE_SIZE)
        yield from (row["device_uuid"] for row in rows)
        if len(rows) < DEVICE_PAGE_SIZE:
            return
        after = rows[-1]["device_uuid"]
