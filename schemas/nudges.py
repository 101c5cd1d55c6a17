"""The MQTT nudge, a wire contract of the server and the agent: ``{"jobId", "event"}`` at QoS 1
on ``devices/{uuid}/jobs/notify`` tells a device to poll now. It is a hint only: polling alone
delivers every job, so a nudge that cannot be read still makes the agent poll."""

from __future__ import annotations

import json
import uuid
from typing import NamedTuple

QUEUED_EVENT = "queued"
CANCELED_EVENT = "canceled"
NUDGE_EVENTS = (QUEUED_EVENT, CANCELED_EVENT)
NUDGE_QOS = 1
UNKNOWN_EVENT = "unknown"

_TOPIC_TEMPLATE = "devices/{uuid}/jobs/notify"


class Nudge(NamedTuple):
    event: str
    job_id: str | None


def notify_topic(device_uuid: uuid.UUID | str) -> str:
    """The topic a device listens on for its nudges."""
    return _TOPIC_TEMPLATE.format(uuid=device_uuid)


def agent_client_id(device_uuid: uuid.UUID | str) -> str:
    """The MQTT client id a device's agent connects with (its broker identity is bound to it)."""
    return f"jobs-agent-{device_uuid}"


def nudge_payload(job_id: uuid.UUID | str, event: str) -> bytes:
    return json.dumps({"jobId": str(job_id), "event": event}).encode()


def read_nudge(payload: bytes) -> Nudge | None:
    """The event and job a nudge names, or None when it cannot be read."""
    try:
        data = json.loads(payload)
        event = str(data.get("event") or UNKNOWN_EVENT)
        job_id = str(data["jobId"]) if data.get("jobId") else None
    except (ValueError, AttributeError, TypeError):
        return None
    return Nudge(event, job_id)
