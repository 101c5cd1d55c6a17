"""The bytes a job document's signature covers, the same on the server and on the device.

A signature covers the document as stored with the execution (handler pins included), written
as compact JSON with sorted keys in UTF-8, after a fixed context line, so a signature made for
anything else can never pass for a job document's. Standard library only: the agent uses it.
"""

from __future__ import annotations

import json

SIGNATURE_CONTEXT = b"device-jobs job document signature v1\n"


def signed_message(document: object) -> bytes:
    """What is signed for ``document``."""
    canonical = json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                           allow_nan=False)
    return SIGNATURE_CONTEXT + canonical.encode()
