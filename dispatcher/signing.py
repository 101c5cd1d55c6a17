"""Signing job documents with the operator's Ed25519 key (``SIGNING_KEY_FILE``).

Threat model: an agent given the public key (``signing_public_key``) runs only documents
signed with the private key. Whoever can write to the database, the broker or the network
between server and devices, but not the key file, cannot make a device run anything unsigned.
Only the API reads the key, at execute; the runs of a recurring job copy their parent's signed
document. Keep the file readable by the API's user alone (``dispatcher signing-key create``
writes it mode 600). A signed document can be executed again (a replay of something once
approved): the signature covers what runs, not when or where; and an admin token can still
execute any document the API will sign. Handler scripts are covered through their sha256 pins.
"""

from __future__ import annotations

import base64
import functools
import os
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from dispatcher.errors import Misconfigured
from schemas.document_signing import signed_message


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
    """The private key in ``path`` (read once per process)."""
    try:
        key = serialization.load_pem_private_key(Path(path).read_bytes(), password=None)
    except (OSError, ValueError) as exc:
        raise Misconfigured(f"SIGNING_KEY_FILE {path}: cannot load an Ed25519 key: {exc}") from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise Misconfigured(f"SIGNING_KEY_FILE {path} is not an Ed25519 private key")
    return key


def sign_document(document: dict, key_file: str) -> str | None:
    """The base64 signature of ``document`` with the key in ``key_file``; None when no key is
    configured (documents go out unsigned)."""
    if not key_file:
        return None
    return base64.b64encode(load_key(key_file).sign(signed_message(document))).decode()
