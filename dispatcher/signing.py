"""Signing jobs with the operator's Ed25519 key (``SIGNING_KEY_FILE``).

Threat model: an agent given the public key (``signing_public_key``) runs only jobs signed
with the private key, as signed. Whoever can write to the database, the broker or the network
between server and devices, but not the key file, cannot make a device run anything unsigned,
nor replay a signed job into another execution, onto another device of a device list (each
has a signature of its own), or outside its validity window (``schemas.document_signing``).
Only the API reads the key, at execute; the runs of a recurring job carry their parent's
signed job. The file must be readable by the API's user alone (``dispatcher signing-key
create`` writes it mode 600; a group- or world-readable file is refused). An admin token can
still execute any document the API will sign. Handler scripts, their interpreter and
arguments, and the artifacts that download steps fetch (id, sha256, size), are covered through
their pins.
"""

from __future__ import annotations

import base64
import functools
import os
import stat
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from dispatcher.config import Settings
from dispatcher.errors import Misconfigured
from schemas.document_signing import SignedJob, read_signed_job, signed_job_text, signed_message

# Devices whose clock is a little behind the server's still accept a job signed just now.
CLOCK_SKEW_ALLOWANCE_S = 300


def create_key_file(path: Path) -> str:
    """Write a new private key to ``path`` (mode 600, never over an existing file); return the
    public key as base64, for the agents' ``signing_public_key``."""
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "wb") as file:
        file.write(pem)
    return public_key_text(key)


def public_key_text(key: Ed25519PrivateKey) -> str:
    raw = key.public_key().public_bytes(serialization.Encoding.Raw,
                                        serialization.PublicFormat.Raw)
    return base64.b64encode(raw).decode()


@functools.lru_cache(maxsize=4)
def load_key(path: str) -> Ed25519PrivateKey:
    """The private key in ``path`` (read once per process); refused unless only its owner can
    read it."""
    try:
        mode = stat.S_IMODE(os.stat(path).st_mode)
        if mode & 0o077:
            raise Misconfigured(f"SIGNING_KEY_FILE {path} is mode {mode:o}: group and others "
                                f"must have no access (chmod 600 {path})")
        key = serialization.load_pem_private_key(Path(path).read_bytes(), password=None)
    except (OSError, ValueError) as exc:
        raise Misconfigured(f"SIGNING_KEY_FILE {path}: cannot load an Ed25519 key: {exc}") from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise Misconfigured(f"SIGNING_KEY_FILE {path} is not an Ed25519 private key")
    return key


@dataclass(frozen=True)
class SignedExecution:
    """What an execution stores when signed: the text, and its signature for any device or,
    for a device-list target, one signature per device."""

    text: str
    signature: str | None
    device_signatures: dict[uuid.UUID, str] | None


def sign_job(
    key_file: str, job_id: uuid.UUID, document: dict, signed_at: datetime, valid_s: int,
    devices: Sequence[uuid.UUID] | None, recurring: bool, runs_until: datetime | None = None,
) -> SignedExecution | None:
    """An execution's signed job; None when no key is configured (jobs go out unsigned).

    The window opens at ``signed_at`` (less a few minutes for device clocks behind the
    server's) and closes ``valid_s`` seconds after ``signed_at`` or after ``runs_until`` (a
    later start, a recurring job's end), whichever is later. ``devices``: a device-list
    target's, each signed for on its own.
    """
    if not key_file:
        return None
    _check_validity(valid_s)
    key = load_key(key_file)
    start = int(signed_at.timestamp())
    last = max(start, int(runs_until.timestamp()) if runs_until else start)
    text = signed_job_text(SignedJob(str(job_id), start - CLOCK_SKEW_ALLOWANCE_S,
                                     last + valid_s, bool(devices), recurring, document))
    if not devices:
        return SignedExecution(text, _signature(key, text, None), None)
    return SignedExecution(text, None, {device: _signature(key, text, str(device))
                                        for device in devices})


def check_signing(settings: Settings) -> None:
    """Refuse (Misconfigured) signing settings that would fail every execute: a key file that
    cannot be loaded or that others can read, a validity window under a second."""
    if settings.signing_key_file:
        load_key(settings.signing_key_file)
        _check_validity(settings.signature_valid_s)


def _check_validity(valid_s: int) -> None:
    if valid_s < 1:
        raise Misconfigured(f"SIGNATURE_VALID_S must be at least 1 second, not {valid_s}")


def _signature(key: Ed25519PrivateKey, text: str, device_uuid: str | None) -> str:
    return base64.b64encode(key.sign(signed_message(text, device_uuid))).decode()


def signature_window(signed_job: str | None) -> dict:
    """When devices accept an execution's signed job (both None when it is unsigned, or its
    signed text was garbled in the database: no device accepts it then)."""
    try:
        job = read_signed_job(signed_job) if signed_job is not None else None
    except (ValueError, RecursionError):
        job = None
    if job is None:
        return {"signature_not_before": None, "signature_not_after": None}
    return {"signature_not_before": datetime.fromtimestamp(job.not_before, UTC),
            "signature_not_after": datetime.fromtimestamp(job.not_after, UTC)}
