"""What a signed job's signature covers, the same on the server and on the device.

A signature covers one text, the *signed job*: compact JSON with sorted keys, written once at
execute, stored beside the execution as that very text (never re-encoded from jsonb) and sent
to the device as it is, after a fixed context line, so a signature made for anything else can
never pass for a job's. It holds everything that decides what runs and where and when it may:

- ``jobId``: the execution it was signed for (a recurring job's runs are executions of their
  own, accepted when ``recurring`` is true and the run's parent is this job);
- ``notBefore`` / ``notAfter``: Unix seconds between which a device may start it;
- ``devices``: the device uuids of a device-list target, or null for a filter or the fleet;
- ``document``: the job document with each server handler pinned (``input.sha256``,
  ``input.scriptType`` and the effective ``input.args``).

Standard library only: the agent uses it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

SIGNATURE_CONTEXT = b"device-jobs signed job v2\n"


@dataclass(frozen=True)
class SignedJob:
    job_id: str
    not_before: int
    not_after: int
    devices: tuple[str, ...] | None
    recurring: bool
    document: dict


def signed_job_text(job: SignedJob) -> str:
    """The text a signature covers for ``job`` (written once, at execute)."""
    return json.dumps({
        "jobId": job.job_id, "notBefore": job.not_before, "notAfter": job.not_after,
        "devices": list(job.devices) if job.devices is not None else None,
        "recurring": job.recurring, "document": job.document,
    }, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def signed_message(text: str) -> bytes:
    """The bytes signed for a signed job's ``text``."""
    return SIGNATURE_CONTEXT + text.encode()


def read_signed_job(text: str) -> SignedJob:
    """The signed job in ``text``; ValueError when it is not one."""
    data = json.loads(text)
    if not isinstance(data, dict):
        raise ValueError("not a JSON object")
    devices = data.get("devices")
    not_before, not_after = data.get("notBefore"), data.get("notAfter")
    if (not isinstance(not_before, int) or isinstance(not_before, bool)
            or not isinstance(not_after, int) or isinstance(not_after, bool)):
        raise ValueError("notBefore and notAfter must be whole numbers")
    if not isinstance(data.get("jobId"), str) or not isinstance(data.get("document"), dict):
        raise ValueError("jobId and document are required")
    if devices is not None and not (isinstance(devices, list)
                                    and all(isinstance(d, str) for d in devices)):
        raise ValueError("devices must be a list of uuids or null")
    return SignedJob(data["jobId"], not_before, not_after,
                     tuple(devices) if devices is not None else None,
                     data.get("recurring") is True, data["document"])
