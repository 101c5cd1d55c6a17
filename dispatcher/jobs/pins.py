"""Pinning an execution's handlers: what runs is what was approved.

At execute, each ``runHandler`` step whose handler exists on the server gets that handler's
sha256 at this moment (``input.sha256``), stored with the execution and covered by its
signature. The agent refuses a handler script whose content hashes to anything else, so
editing a handler never changes a job already executed (its remaining devices fail that step
with a clear reason; execute the job again to run the new version). A step naming a handler
the server does not have (one installed on the devices themselves) is left unpinned.
"""

from __future__ import annotations

import copy

from dispatcher import db
from schemas.handlers import handler_names
from schemas.job_document import RUN_HANDLER


def _steps(document: dict) -> list[dict]:
    return [*document["steps"], *([document["finalStep"]] if "finalStep" in document else [])]


def pin_handlers(c: db.Connector, document: dict) -> dict:
    """``document`` (canonical) with each server handler it runs pinned to its sha256 now."""
    named = {step["input"]["handler"] for step in _steps(document) if step["type"] == RUN_HANDLER}
    if not named:
        return document
    candidates = sorted({other for name in named for other in handler_names(name)})
    hashes = {row["name"]: row["script_sha256"]
              for row in c.all("handler_hashes", names=candidates)}
    pinned = copy.deepcopy(document)
    for step in _steps(pinned):
        if step["type"] != RUN_HANDLER:
            continue
        # The handler the device will fetch: the exact name, else its ".sh" twin.
        found = next((hashes[n] for n in handler_names(step["input"]["handler"]) if n in hashes),
                     None)
        if found is not None:
            step["input"]["sha256"] = found
    return pinned
