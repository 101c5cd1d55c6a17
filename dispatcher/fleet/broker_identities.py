"""Each device's own MQTT identity, when the server issues them (``MQTT_ADMIN_URL`` set).

A device logs in to the broker with its uuid as user name and a password derived from the hash
of its current device token (an HMAC keyed with the broker admin's password): nothing more is
stored, the server can give the broker the same identity again whenever it must (acceptance of
a pending device, a broker that was down at enrollment), and a new device token (enrolling
again) means a new password, so the old one stops working when the identity is replaced.

Enrollment answers the credentials even when the broker cannot be told at that moment: the
device polls without nudges, and the identity is given to the broker by the device's next
``POST /devices/<uuid>/mqtt-credentials`` (or its next enrollment). MQTT is only a hint.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import uuid as uuid_mod
from typing import NamedTuple
from urllib.parse import unquote, urlsplit, urlunsplit

from dispatcher.config import Settings
from dispatcher.errors import NotFound
from dispatcher.mqtt_admin import (
    BrokerAdminError,
    DynsecAdmin,
    grant_commands,
    revoke_commands,
)
from schemas.nudges import agent_client_id, notify_topic

log = logging.getLogger(__name__)


# What a pending device's credentials say until an operator accepts it.
PENDING_PROBLEM = "valid once an operator accepts this device"


class MqttCredentials(NamedTuple):
    """A device's MQTT login, as enrollment and the device's own endpoint answer it."""

    url: str
    username: str
    password: str
    # Whether the broker knows them now; else why not (the device asks again later).
    ready: bool = True
    problem: str = ""


def issues_credentials(settings: Settings) -> bool:
    return bool(settings.mqtt_admin_url)


def require_issuing(settings: Settings) -> None:
    if not issues_credentials(settings):
        raise NotFound("This server issues no MQTT credentials (MQTT_ADMIN_URL is not set)")


def device_broker_url(settings: Settings) -> str:
    """The broker URL devices connect to, without credentials."""
    parts = urlsplit(settings.mqtt_device_url or settings.mqtt_url or settings.mqtt_admin_url)
    host = parts.hostname or "127.0.0.1"
    netloc = f"[{host}]" if ":" in host else host
    if parts.port:
        netloc += f":{parts.port}"
    return urlunsplit((parts.scheme, netloc, "", "", ""))


def credentials_for(settings: Settings, device_uuid: uuid_mod.UUID | str,
                    token_hash: bytes) -> MqttCredentials:
    key = unquote(urlsplit(settings.mqtt_admin_url).password or "").encode()
    digest = hmac.new(key, f"mqtt:{device_uuid}:".encode() + token_hash, hashlib.sha256)
    password = base64.urlsafe_b64encode(digest.digest()).decode().rstrip("=")
    return MqttCredentials(device_broker_url(settings), str(device_uuid), password)


def grant(settings: Settings, device_uuid: uuid_mod.UUID | str,
          token_hash: bytes) -> MqttCredentials:
    """Give the broker this device's identity (replacing any earlier one, whose sessions are
    disconnected); BrokerAdminError when the broker cannot be told."""
    credentials = credentials_for(settings, device_uuid, token_hash)
    DynsecAdmin(settings.mqtt_admin_url).run(grant_commands(
        credentials.username, credentials.password, agent_client_id(device_uuid),
        notify_topic(device_uuid)))
    log.info("mqtt identity granted device_uuid=%s", device_uuid)
    return credentials


def grant_or_explain(settings: Settings, device_uuid: uuid_mod.UUID | str,
                     token_hash: bytes) -> MqttCredentials:
    """The device's credentials, granted on the broker if it can be told now, else marked not
    ready with the reason (the enrollment that asked for them goes ahead)."""
    try:
        return grant(settings, device_uuid, token_hash)
    except BrokerAdminError as exc:
        log.warning("mqtt identity not granted device_uuid=%s error=%s", device_uuid, exc)
        return credentials_for(settings, device_uuid, token_hash)._replace(
            ready=False, problem=str(exc))


def for_enrollment(settings: Settings, device_uuid: uuid_mod.UUID | str, token_hash: bytes,
                   accepted: bool) -> MqttCredentials:
    """The credentials an enrolling device is told: granted now when it was accepted; a pending
    device's are told already, and granted when an operator accepts it."""
    if accepted:
        return grant_or_explain(settings, device_uuid, token_hash)
    return credentials_for(settings, device_uuid, token_hash)._replace(
        ready=False, problem=PENDING_PROBLEM)


def revoke(settings: Settings, device_uuid: uuid_mod.UUID | str) -> bool:
    """Remove the device's identity from the broker; False (logged) when it cannot be told."""
    try:
        DynsecAdmin(settings.mqtt_admin_url).run(revoke_commands(str(device_uuid)))
    except BrokerAdminError as exc:
        log.warning("mqtt identity not revoked device_uuid=%s error=%s", device_uuid, exc)
        return False
    log.info("mqtt identity revoked device_uuid=%s", device_uuid)
    return True
