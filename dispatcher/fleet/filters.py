"""Group filters: which devices a target filter matches.

A filter such as ``{"device_type": "raspberry-pi", "environment": "production"}`` matches
devices whose ``device_type`` column equals the ``device_type`` key (any type when the key is
absent) and whose attributes contain every other key (``attributes @> rest``, served by the GIN
index).
"""

from __future__ import annotations

from typing import Any

from dispatcher import db
from dispatcher.errors import InvalidInput

DEVICE_TYPE_KEY = "device_type"


def device_filter_params(target_filter: dict, field: str = "filter") -> dict[str, Any]:
    """Query parameters ``device_type`` and ``attributes`` for a group filter.

    A filter such as ``{"device_type": "raspberry-pi", "environment": "production"}`` matches
    devices whose ``device_type`` column equals the ``device_type`` key (any type when the key is
    absent) and whose attributes contain every other key (``attributes @> rest``, served by the
    GIN index). Use in SQL as
    ``(%(device_type)s::text IS NULL OR device_type = %(device_type)s)
    AND attributes @> %(attributes)s``. ``field`` names the request field in errors.
    """
    if not isinstance(target_filter, dict):
        raise InvalidInput(f"{field} must be a JSON object", errors={field: ["Must be an object."]})
    attributes = dict(target_filter)
    device_type = attributes.pop(DEVICE_TYPE_KEY, None)
    if device_type is not None and not isinstance(device_type, str):
        raise InvalidInput(
            f"{field}.device_type must be a string",
            errors={field: {DEVICE_TYPE_KEY: ["Must be a string."]}},
        )
    return {"device_type": device_type, "attributes": db.jsonb(attributes)}
