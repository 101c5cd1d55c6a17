"""MQTT nudges: ``devices/{uuid}/jobs/notify`` says a job was queued or canceled.

A nudge is only a hint to poll now; the poll loop delivers every job without it. The client
keeps a persistent session (fixed client id, clean_session off), so QoS 1 nudges sent while
the link was down arrive when it comes back, and paho reconnects on its own.

After every (re)connect the listener says "connected" once the broker has acknowledged the
subscription, not before: a job queued before that moment is found by the poll it triggers,
and one queued after it is nudged. Saying it at CONNACK would leave a gap in which a nudge
for a new job goes to a broker that does not yet know the topic (a restarted broker keeps no
sessions) and the job waits a whole poll interval.

paho-mqtt 1.x (Debian Bullseye's 1.5) and 2.x both work: 2.x is asked for its version 2
callbacks, 1.x has only its own, and the callbacks below read either.
"""

from __future__ import annotations

import logging
import ssl
from collections.abc import Callable
from urllib.parse import unquote, urlsplit

import paho.mqtt.client as mqtt

from schemas.nudges import (
    NUDGE_QOS,
    UNKNOWN_EVENT,
    Nudge,
    agent_client_id,
    notify_topic,
    read_nudge,
)

log = logging.getLogger(__name__)

RECONNECT_MIN_S = 1
RECONNECT_MAX_S = 60
KEEPALIVE_S = 60

NudgeCallback = Callable[[str, "str | None"], None]
RefusedCallback = Callable[[], None]
# paho 1.x grants QoS 0x80 to a refused subscription; 2.x gives a ReasonCode that says so.
SUBACK_FAILURE = 0x80


def _paho_client(client_id: str) -> mqtt.Client:
    """A persistent-session client with version 2 callbacks on paho 2.x, its own on 1.x."""
    callback_api = getattr(mqtt, "CallbackAPIVersion", None)
    if callback_api is None:
        return mqtt.Client(client_id=client_id, clean_session=False)
    return mqtt.Client(callback_api.VERSION2, client_id=client_id, clean_session=False)


def _is_failure(code: object, failure_from: int = 1) -> bool:
    """A paho 2.x ReasonCode's own verdict; a paho 1.x return code from ``failure_from`` up."""
    if hasattr(code, "is_failure"):
        return bool(code.is_failure)
    return isinstance(code, int) and code >= failure_from


class NotifyListener:
    """Calls ``on_nudge(event, job_id)`` for every message on the device's notify topic."""

    def __init__(self, mqtt_url: str, device_uuid: str, on_nudge: NudgeCallback,
                 on_refused: RefusedCallback | None = None) -> None:
        url = urlsplit(mqtt_url)
        self.topic = notify_topic(device_uuid)
        self._on_nudge = on_nudge
        self._on_refused = on_refused
        self._host = url.hostname or "127.0.0.1"
        tls = url.scheme in ("mqtts", "ssl")
        self._port = url.port or (8883 if tls else 1883)
        self._client = _paho_client(agent_client_id(device_uuid))
        if url.username:
            self._client.username_pw_set(unquote(url.username), unquote(url.password or ""))
        if tls:
            self._client.tls_set(cert_reqs=ssl.CERT_REQUIRED)
        self._client.reconnect_delay_set(RECONNECT_MIN_S, RECONNECT_MAX_S)
        self._client.on_connect = self._connected
        self._client.on_disconnect = self._disconnected
        self._client.on_message = self._message
        self._client.on_subscribe = self._subscribed
        self._subscribed_now = False

    @property
    def connected(self) -> bool:
        """True while nudges can reach us: connected and the subscription acknowledged."""
        return self._subscribed_now and self._client.is_connected()

    def start(self) -> None:
        self._client.connect_async(self._host, self._port, keepalive=KEEPALIVE_S)
        self._client.loop_start()

    def stop(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()

    def set_login(self, username: str, password: str) -> None:
        """The user name and password of the next (re)connect."""
        self._client.username_pw_set(username, password)

    def _connected(self, client, userdata, flags, reason_code, properties=None) -> None:
        if _is_failure(reason_code):
            log.warning("mqtt connect refused host=%s reason=%s", self._host, reason_code)
            if self._on_refused is not None:
                self._on_refused()
            return
        log.info("mqtt connected host=%s topic=%s", self._host, self.topic)
        client.subscribe(self.topic, qos=NUDGE_QOS)

    def _subscribed(self, client, userdata, mid, reason_codes, properties=None) -> None:
        if any(_is_failure(code, SUBACK_FAILURE) for code in reason_codes):
            log.error("mqtt subscription refused topic=%s reason=%s", self.topic, reason_codes)
            return
        log.info("mqtt subscribed topic=%s", self.topic)
        self._subscribed_now = True
        # Something may have been queued while we were away: poll once, now that any later
        # job will be nudged.
        self._notify("connected", None)

    def _disconnected(self, client, userdata, *reason) -> None:
        # paho 2.x: (flags, reason_code, properties); paho 1.x: (rc,).
        self._subscribed_now = False
        log.warning("mqtt disconnected host=%s reason=%s", self._host,
                    reason[1] if len(reason) > 1 else reason[0])

    def _message(self, client, userdata, message) -> None:
        nudge = read_nudge(message.payload)
        if nudge is None:
            log.warning("unreadable mqtt nudge topic=%s", message.topic)
            nudge = Nudge(UNKNOWN_EVENT, None)
        self._notify(nudge.event, nudge.job_id)

    def _notify(self, event: str, job_id: str | None) -> None:
        try:
            self._on_nudge(event, job_id)
        except Exception:
            log.exception("nudge handling failed event=%s job_id=%s", event, job_id)
