"""Device identities on the MQTT broker, through Mosquitto's dynamic security plugin.

The plugin is administered with MQTT messages: a JSON list of commands published on
``$CONTROL/dynamic-security/v1`` by a client whose role allows it, answered on
``…/v1/response``. Each call here opens one short connection as that admin client (enrollments
are rare, and a long-lived connection would only add a reconnect state to reason about), sends
its commands in one message and waits for their answers.

A device's identity is a client named by the device's uuid, bound to the agent's client id,
with a role of its own: its ACL topics are literal, because the plugin of Debian's Mosquitto 2.0
does not substitute ``%u`` or ``%c`` in them (a pattern role would let no device subscribe).
The role allows subscribing to the device's own notify topic and nothing else, and denies every
publish whatever the broker's default access says.
"""

from __future__ import annotations

import json
import logging
import queue
import secrets
from urllib.parse import unquote, urlsplit

import paho.mqtt.client as mqtt

from dispatcher.errors import DispatcherError

log = logging.getLogger(__name__)

CONTROL_TOPIC = "$CONTROL/dynamic-security/v1"
RESPONSE_TOPIC = f"{CONTROL_TOPIC}/response"
CONNECT_TIMEOUT_S = 3.0
ANSWER_TIMEOUT_S = 5.0
# What deleting something that is not there answers; revoking twice, or before any grant, is
# not a failure.
NOT_FOUND_ERRORS = ("Client not found", "Role not found")


class BrokerAdminError(DispatcherError):
    """The broker could not be reached or refused a command; the message says which."""

    http_status = 503


def device_role(username: str) -> str:
    return f"device-{username}"


def grant_commands(username: str, password: str, client_id: str, topic: str) -> list[dict]:
    """Replace any identity of ``username`` (its sessions are disconnected) with one that may
    only subscribe to ``topic``."""
    role = device_role(username)
    return [
        {"command": "deleteClient", "username": username},
        {"command": "deleteRole", "rolename": role},
        {"command": "createRole", "rolename": role, "acls": [
            {"acltype": "subscribeLiteral", "topic": topic, "priority": 1, "allow": True},
            {"acltype": "publishClientSend", "topic": "#", "priority": 0, "allow": False},
        ]},
        {"command": "createClient", "username": username, "password": password,
         "clientid": client_id, "roles": [{"rolename": role}]},
    ]


def revoke_commands(username: str) -> list[dict]:
    return [{"command": "deleteClient", "username": username},
            {"command": "deleteRole", "rolename": device_role(username)}]


def _answers_failed(commands: list[dict], answers: list[dict]) -> list[str]:
    """The commands whose answer is an error that matters (deleting what is absent is not)."""
    by_id = {answer.get("correlationData"): answer for answer in answers}
    failed = []
    for command in commands:
        answer = by_id.get(command["correlationData"])
        if answer is None:
            failed.append(f"{command['command']}: no answer")
        elif answer.get("error") and not (command["command"].startswith("delete")
                                          and answer["error"] in NOT_FOUND_ERRORS):
            failed.append(f"{command['command']}: {answer['error']}")
    return failed


class DynsecAdmin:
    """The admin client of the broker's dynamic security plugin, from ``MQTT_ADMIN_URL``
    (``mqtt[s]://user:password@host[:port]``)."""

    def __init__(self, admin_url: str) -> None:
        parts = urlsplit(admin_url)
        if parts.scheme not in ("mqtt", "mqtts", "tcp", "ssl") or not parts.username:
            raise ValueError("MQTT_ADMIN_URL must be mqtt[s]://user:password@host[:port], got "
                             f"{parts.scheme}://{parts.hostname}")
        self._tls = parts.scheme in ("mqtts", "ssl")
        self._host = parts.hostname or "127.0.0.1"
        self._port = parts.port or (8883 if self._tls else 1883)
        self._username = unquote(parts.username)
        self._password = unquote(parts.password or "")

    def run(self, commands: list[dict]) -> None:
        """Send ``commands`` in one message; BrokerAdminError unless each one did its part."""
        tagged = [{**command, "correlationData": f"{i}-{secrets.token_hex(4)}"}
                  for i, command in enumerate(commands)]
        answers = self._exchange(tagged)
        failed = _answers_failed(tagged, answers)
        if failed:
            raise BrokerAdminError("the MQTT broker refused: " + "; ".join(failed))

    def _exchange(self, commands: list[dict]) -> list[dict]:
        replies: queue.Queue = queue.Queue()
        subscribed: queue.Queue = queue.Queue()
        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2,
                             client_id=f"device-jobs-admin-{secrets.token_hex(4)}",
                             clean_session=True)
        client.username_pw_set(self._username, self._password)
        if self._tls:
            client.tls_set()
        client.on_connect = lambda c, u, flags, code, props: (
            subscribed.put(code) if code.is_failure else c.subscribe(RESPONSE_TOPIC, qos=1))
        client.on_subscribe = lambda c, u, mid, codes, props: subscribed.put(codes[0])
        client.on_message = lambda c, u, message: replies.put(message.payload)
        try:
            client.connect(self._host, self._port, keepalive=30)
        except OSError as exc:
            raise BrokerAdminError(f"the MQTT broker {self._host}:{self._port} is unreachable: "
                                   f"{exc}") from None
        client.loop_start()
        try:
            return self._send(client, subscribed, replies, commands)
        finally:
            client.disconnect()
            client.loop_stop()

    def _send(self, client: mqtt.Client, subscribed: queue.Queue, replies: queue.Queue,
              commands: list[dict]) -> list[dict]:
        try:
            code = subscribed.get(timeout=CONNECT_TIMEOUT_S)
        except queue.Empty:
            raise BrokerAdminError(f"the MQTT broker {self._host}:{self._port} did not answer "
                                   "the admin's connection") from None
        if code.is_failure:
            raise BrokerAdminError(f"the MQTT broker refused the admin client: {code}")
        client.publish(CONTROL_TOPIC, json.dumps({"commands": commands}), qos=1)
        wanted = {command["correlationData"] for command in commands}
        answers: list[dict] = []
        while wanted - {answer.get("correlationData") for answer in answers}:
            try:
                payload = replies.get(timeout=ANSWER_TIMEOUT_S)
            except queue.Empty:
                break
            try:
                answers.extend(json.loads(payload).get("responses", []))
            except (ValueError, AttributeError):
                log.warning("unreadable dynamic security answer payload=%r", payload[:200])
        return answers
