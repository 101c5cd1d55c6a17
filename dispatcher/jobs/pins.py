"""Pinning an execution's handlers: what runs is what was approved.

At execute, each ``runHandler`` step whose handler exists on the server is fixed as it is at
this moment: its content's sha256 (``input.sha256``), its interpreter (``input.scriptType``)
and the arguments it runs with (``input.args``: the step's own, else the handler's
``default_args`` now). They are stored with the execution and covered by its signature, so
editing a handler never changes a job already executed: the agent refuses content that hashes
to anything else (its remaining devices fail that step with a clear reason; execute the job
again to run the new version) and never takes the server's current interpreter or arguments.

A step naming a handler the server does not have is *local*: one installed on the devices
themselves. An agent that runs signed jobs only never fetches a local step's handler from the
server, whatever the server holds later. ``handler_steps`` says which step is which.
"""

from __future__ import annotations

import copy

from marshmallow import ValidationError

from dispatcher import db
from schemas.executions import LOCAL, PINNED
from schemas.handlers import handler_names
from schemas.job_document import RUN_HANDLER, pinned_at_execute, validate_job_document


def _steps(document: dict) -> list[dict]:
    return [*document["steps"], *([document["finalStep"]] if "finalStep" in document else [])]


def pin_handlers(c: db.Connector, document: dict) -> dict:
    """``document`` (canonical) with each server handler it runs pinned as it is now."""
    named = {step["input"]["handler"] for step in _steps(document) if step["type"] == RUN_HANDLER}
    if not named:
        return document
    candidates = sorted({other for name in named for other in handler_names(name)})
    handlers = {row["name"]: row for row in c.all("handler_hashes", names=candidates)}
    pinned = copy.deepcopy(document)
    for step in _steps(pinned):
        if step["type"] != RUN_HANDLER:
            continue
        step_input = step["input"]
        # Pins are the server's to write: whatever the author wrote in their place goes.
        step_input.pop("scriptType", None)
        # The handler the device will fetch: the exact name, else its ".sh" twin.
        found = next((handlers[n] for n in handler_names(step_input["handler"])
                      if n in handlers), None)
        if found is not None:
            step_input["sha256"] = found["script_sha256"]
            step_input["scriptType"] = found["script_type"]
            step_input["args"] = step_input.get("args") or list(found["default_args"])
    return pinned


def handler_steps(document: object) -> list[dict]:
    """Each ``runHandler`` step of an executed document: pinned (run only as fixed at execute,
    fetched from the server) or local (run from the device, never fetched under signing). A
    stored document that is not a valid one (written to the database by hand) has none."""
    try:
        steps = _steps(validate_job_document(document))
    except ValidationError:
        return []
    found = []
    for step in steps:
        if step["type"] != RUN_HANDLER:
            continue
        step_input = step["input"]
        entry = {"step": step["name"], "handler": step_input["handler"],
                 "source": PINNED if pinned_at_execute(step_input) else LOCAL,
                 "args": list(step_input["args"])}
        if entry["source"] == PINNED:
            entry["sha256"] = step_input["sha256"]
            entry["script_type"] = step_input["scriptType"]
        found.append(entry)
    return found
