"""Checking a signed job against the operator's public key, this device and this moment.

With ``signing_public_key`` configured, the agent runs only jobs signed with the matching
private key (``dispatcher signing-key create``; README, Security), and runs the document of the
signed text itself (``schemas.document_signing``), never the server's copy of it. A job is
REJECTED with the reason, and nothing of it runs, when it is unsigned, badly signed or
altered, signed for another execution or for another device of a device list, or outside
its validity window by this device's clock.
"""

from __future__ import annotations

import base64
import binascii
import time
import uuid

from agent import ed25519
from agent.server_api import AgentError
from schemas.document_signing import read_signed_job, signed_message


class JobRefused(AgentError):
    """The job may not run here; the message is the reason reported with REJECTED."""


class OutsideValidity(JobRefused):
    """The signature holds, but not at this moment by this device's clock."""


def decode_public_key(text: str) -> bytes:
    """The 32 raw bytes of a base64 Ed25519 public key; ValueError when it is not one."""
    try:
        raw = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("not base64") from None
    if len(raw) != 32:
        raise ValueError(f"{len(raw)} bytes, an Ed25519 public key has 32")
    return raw


def signed_document(
    signed_text: object, signature: object, public_key: bytes, job_id: str,
    parent_job_id: str | None, device_uuid: str, now: float,
) -> dict:
    """The document a signed job runs, once its signature holds for this execution of
    ``job_id`` on ``device_uuid`` at ``now`` (Unix seconds); JobRefused with the reason."""
    if not signature or not signed_text:
        raise JobRefused("job is not signed, and this agent runs only signed jobs")
    try:
        raw = base64.b64decode(str(signature), validate=True)
        job = read_signed_job(str(signed_text))
    except (binascii.Error, ValueError, TypeError, RecursionError):
        raise JobRefused("job signature is not readable") from None
    device = _same_uuid(device_uuid)
    message = signed_message(str(signed_text), device if job.per_device else None)
    if not ed25519.verify(public_key, message, raw):
        if job.per_device:
            raise JobRefused(f"job signature does not verify for this device ({device}) with "
                             "this agent's signing_public_key (signed for another device, "
                             "altered job, or signed with another key)")
        raise JobRefused("job signature does not verify with this agent's signing_public_key "
                         "(altered job, or signed with another key)")
    job_id = _same_uuid(job_id)
    accepted = {job_id}
    if job.recurring and parent_job_id:
        accepted.add(_same_uuid(parent_job_id))  # a run of this recurring job
    if _same_uuid(job.job_id) not in accepted:
        raise JobRefused(f"job signature was made for job {job.job_id}, not for job {job_id}: "
                         "a signature holds for its own execution only")
    if now < job.not_before:
        raise OutsideValidity(f"job signature is not valid before {_when(job.not_before)} "
                         f"(this device's clock says {_when(now)})")
    if now > job.not_after:
        raise OutsideValidity(f"job signature expired at {_when(job.not_after)} "
                         f"(this device's clock says {_when(now)})")
    return job.document


def _same_uuid(text: str) -> str:
    try:
        return str(uuid.UUID(str(text)))
    except ValueError:
        return str(text)


def _when(seconds: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))
