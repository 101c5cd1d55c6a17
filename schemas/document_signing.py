"""What a signed job's signature covers, the same on the server and on the device.

A signature covers one text, the *signed job*: compact JSON with sorted keys, written once at
execute, stored beside the execution as that very text (never re-encoded from jsonb) and sent
to the device as it is. It holds everything that decides what runs, and when and where it may:

- ``jobId``: the execution it was signed for (a recurring job's runs are executions of their
  own, accepted when ``recurring`` is true and the run's parent is this job);
- ``notBefore`` / ``notAfter``: Unix seconds between which a device may start it;
- ``perDevice``: true for a device-list target, whose every device gets a signature of its own
  (below), so a signature holds on its own device only;
- ``document``: the job document with each server handler pinned (``input.sha256``,
  ``input.scriptType`` and the effective ``input.args``) and each artifact a ``download-file``
  step names pinned (``input.artifact``: id, sha256 and size; ``schemas.artifacts``).

What is signed is a fixed context line, the text's sha256, and the device's uuid (``*`` when
the job is not per device), so a signature made for anything else can never pass for a job's,
and signing a job for 10,000 listed devices hashes its text once. Standard library only: the
agent uses it.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

SIGNATURE_CONTEXT = b"device-jobs signed job v2\n"
ANY_DEVICE = "*"


@dataclass(frozen=True)
class SignedJob:
    job_id: str
    not_before: int
    not_after: int
    per_device: bool
    recurring: bool
    document: dict


def signed_job_text(job: SignedJob) -> str:
    """The text a signature covers for ``job`` (written once, at execute)."""
    return json.dumps({
        "jobId": job.job_id, "notBefore": job.not_before, "notAfter": job.not_after,
        "perDevice": job.per_device, "recurring": job.recurring, "document": job.document,
    }, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def signed_message(text: str, device_uuid: str | None = None) -> bytes:
    """The bytes signed for a signed job's ``text``, for one device of a per-device job."""
    digest = hashlib.sha256(text.encode()).hexdigest()
    return SIGNATURE_CONTEXT + f"{digest}\n{device_uuid or ANY_DEVICE}".encode()


def read_signed_job(text: str) -> SignedJob:
    """The signed job in ``text``; ValueError when it is not one."""
    data = json.loads(text)
    if not isinstance(data, dict):
        raise ValueError("not a JSON object")
    not_before, not_after = data.get("notBefore"), data.get("notAfter")
    if (not isinstance(not_before, int) or isinstance(not_before, bool)
            or not isinstance(not_after, int) or isinstance(not_after, bool)):
        raise ValueError("notBefore and notAfter must be whole numbers")
    if not isinstance(data.get("jobId"), str) or not isinstance(data.get("document"), dict):
        raise ValueError("jobId and document are required")
    return SignedJob(data["jobId"], not_before, not_after, data.get("perDevice") is True,
                     data.get("recurring") is True, data["document"])
