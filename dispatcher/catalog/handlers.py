"""Job handlers: named scripts that runHandler steps run on devices.

Each handler carries the sha256 of its script, computed here whenever the script is stored, so
a device can check the script it fetched before running it.
"""

from __future__ import annotations

import hashlib
import uuid

from dispatcher import audit, db
from dispatcher.catalog import entry_identity
from dispatcher.changes import field_changes
from dispatcher.errors import NotFound
from schemas.handlers import HANDLER_NAME_PATTERN, handler_names
from schemas.vocabulary import PENDING

# A device may fetch the handlers of its executions that are pending, or were updated this
# recently (a step being set up as the row moves on, a retry of a cached copy).
DEVICE_HANDLER_RECENT_S = 24 * 3600

EDITABLE_FIELDS = (
    "description", "script_type", "script_content", "script_sha256", "permissions", "default_args",
)


def script_sha256(script_content: str) -> str:
    """Hex sha256 of the script as UTF-8, the bytes the device receives and writes."""
    return hashlib.sha256(script_content.encode()).hexdigest()


def create_handler(fields: dict, actor: str) -> dict:
    """Store a new handler from validated request ``fields``; a duplicate name is a Conflict."""
    with db.transaction() as c:
        handler = c.row(
            "insert_job_handler",
            **entry_identity(fields, actor),
            script_type=fields["script_type"],
            script_content=fields["script_content"],
            script_sha256=script_sha256(fields["script_content"]),
            permissions=fields["permissions"],
            default_args=db.jsonb(fields["default_args"]),
        )
        audit.record_event(
            c, actor, "handler.created", "job_handler", handler["name"],
            details=_identity(handler),
        )
    return handler


def _identity(handler: dict) -> dict:
    """Enough to tell which script an audit event was about, without copying the script."""
    return {"script_type": handler["script_type"], "script_sha256": handler["script_sha256"]}


def _not_found(name: str) -> NotFound:
    return NotFound(f"Job handler {name!r} not found")


def _lock_handler(c: db.Connector, name: str) -> dict:
    # A name no handler can have (a NUL byte, a slash) is simply not found.
    handler = c.one("lock_job_handler", name=name) if HANDLER_NAME_PATTERN.match(name) else None
    if handler is None:
        raise _not_found(name)
    return handler


def get_handler(name: str) -> dict:
    handler = db.one("get_job_handler", name=name) if HANDLER_NAME_PATTERN.match(name) else None
    if handler is None:
        raise _not_found(name)
    return handler


def get_device_handler(device_uuid: uuid.UUID, name: str) -> dict:
    """A handler for a device, only when one of its pending or recent executions runs it: a
    device token reads no script its own jobs do not need. NotFound otherwise (a device does
    not learn which handlers exist)."""
    handler = db.one(
        "get_device_job_handler", name=name, twin=handler_names(name)[-1],
        device_uuid=device_uuid, pending=list(PENDING), recent_s=DEVICE_HANDLER_RECENT_S,
    ) if HANDLER_NAME_PATTERN.match(name) else None
    if handler is None:
        raise _not_found(name)
    return handler


def list_handlers(limit: int, offset: int) -> dict:
    """A page of handlers by name, without their scripts."""
    rows = db.all("list_job_handlers", limit=limit, offset=offset)
    total = db.row("count_job_handlers")["n"]
    return {"handlers": rows, "total": total, "limit": limit, "offset": offset}


def update_handler(name: str, changes: dict, actor: str) -> tuple[dict, dict]:
    """Apply any subset of the editable fields; return the handler and what changed."""
    with db.transaction() as c:
        current = _lock_handler(c, name)
        wanted = {field: changes.get(field, current[field]) for field in EDITABLE_FIELDS}
        wanted["script_sha256"] = script_sha256(wanted["script_content"])
        diff = field_changes(current, wanted, EDITABLE_FIELDS, summarized=("script_content",))
        if not diff:
            return current, diff
        handler = c.row(
            "update_job_handler", name=name, description=wanted["description"],
            script_type=wanted["script_type"], script_content=wanted["script_content"],
            script_sha256=wanted["script_sha256"], permissions=wanted["permissions"],
            default_args=db.jsonb(wanted["default_args"]),
        )
        audit.record_event(
            c, actor, "handler.updated", "job_handler", name, details={"changed": diff}
        )
    return handler, diff


def delete_handler(name: str, actor: str) -> dict:
    """Delete a handler; returns it as it was. Steps naming it fail on the device from now on."""
    with db.transaction() as c:
        handler = _lock_handler(c, name)
        c.execute("delete_job_handler", name=name)
        audit.record_event(
            c, actor, "handler.deleted", "job_handler", name,
            details=_identity(handler),
        )
    return handler
