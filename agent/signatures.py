"""Checking a job document's signature against the operator's public key.

With ``signing_public_key`` configured, the agent runs only documents signed with the matching
private key (``dispatcher signing-key create``; README, Security): unsigned, badly signed or
altered documents are REJECTED with the reason, and nothing of them runs.
"""

from __future__ import annotations

import base64
import binascii

from agent import ed25519
from schemas.document_signing import signed_message


def decode_public_key(text: str) -> bytes:
    """The 32 raw bytes of a base64 Ed25519 public key; ValueError when it is not one."""
    try:
        raw = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("not base64") from None
    if len(raw) != 32:
        raise ValueError(f"{len(raw)} bytes, an Ed25519 public key has 32")
    return raw


def signature_problem(document: object, signature: object, public_key: bytes) -> str | None:
    """Why ``document`` may not run under ``public_key``, or None when its signature holds."""
    if not signature:
        return "job document is not signed, and this agent runs only signed documents"
    try:
        raw = base64.b64decode(str(signature), validate=True)
        message = signed_message(document)
    except (binascii.Error, ValueError, TypeError):
        return "job document signature is not readable"
    if not ed25519.verify(public_key, message, raw):
        return ("job document signature does not verify with this agent's signing_public_key "
                "(altered document, or signed with another key)")
    return None
