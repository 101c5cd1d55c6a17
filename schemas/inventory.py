"""Device inventory: the report a device sends about itself (``PUT
/api/v1/devices/:uuid/inventory``), shared by the server and the agent.

``data`` is a JSON object of facts, nested objects allowed (``{"os": {"id": "debian"}}`` is
what a filter names as ``inventory.os.id``). ``mode`` ``replace`` (the default) makes it the
whole inventory; ``merge`` merges it in, object by object, a null removing a key. Keys are
counted as leaves, nested objects flattened: at most 100; the body is at most 32 KiB.
"""

from __future__ import annotations

from typing import Any

from marshmallow import Schema, ValidationError, fields, validate, validates

from schemas.fields import JsonObject

REPLACE = "replace"
MERGE = "merge"
MAX_INVENTORY_LEAVES = 100
MAX_INVENTORY_BODY_BYTES = 32 * 1024
MAX_KEY_LENGTH = 128


def count_leaves(value: Any) -> int:
    """Keys of an inventory with nested objects flattened (``{"os": {"id", "version_id"}}``
    counts two); an empty object counts as one."""
    if isinstance(value, dict):
        return sum(count_leaves(v) if isinstance(v, dict) and v else 1 for v in value.values())
    return 1


def key_problem(data: dict, prefix: str = "") -> str | None:
    """Why a key of ``data`` cannot be stored, or None: a dot would read as a path in filters
    and a leading $ as an operator."""
    for key, value in data.items():
        name = prefix + key
        if not key or "." in key or key.startswith("$") or len(key) > MAX_KEY_LENGTH:
            return (f"Key {name!r}: keys are 1-{MAX_KEY_LENGTH} characters without '.', "
                    "not starting with '$' (nest objects instead of dotting keys).")
        if isinstance(value, dict):
            found = key_problem(value, name + ".")
            if found:
                return found
    return None


class InventoryReport(Schema):
    data = JsonObject(required=True, metadata={
        "description": 'The facts, e.g. {"os": {"id": "debian", "version_id": "12"}, '
                       '"disk_free_mb": 812}.'})
    mode = fields.String(load_default=REPLACE, validate=validate.OneOf((REPLACE, MERGE)))

    @validates("data")
    def _storable(self, data: dict, **kwargs) -> None:
        problem = key_problem(data)
        if problem:
            raise ValidationError(problem)
        leaves = count_leaves(data)
        if leaves > MAX_INVENTORY_LEAVES:
            raise ValidationError(f"{leaves} keys; at most {MAX_INVENTORY_LEAVES} (nested keys "
                                  "count one each).")


class InventoryStored(Schema):
    inventory = fields.Dict(required=True)
    inventory_updated_at = fields.DateTime(allow_none=True)
    changed = fields.Boolean(required=True, metadata={
        "description": "Whether the report changed the stored inventory."})
