"""Fields whose values can always be stored in PostgreSQL.

PostgreSQL refuses text and jsonb containing NUL characters, and jsonb refuses NaN and
Infinity. Rejecting them at the edge turns what would be a database error into a 400 that
names the field.
"""

from __future__ import annotations

import math

from marshmallow import ValidationError, fields

NUL_MESSAGE = "Must not contain NUL characters."


def refuse_unstorable_json(value: object) -> None:
    """Raise ValidationError if ``value`` holds a NUL character or a non-finite number anywhere."""
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, str):
            if "\x00" in item:
                raise ValidationError(NUL_MESSAGE)
        elif isinstance(item, float):
            if not math.isfinite(item):
                raise ValidationError("Numbers must be finite.")
        elif isinstance(item, dict):
            pending.extend(item.keys())
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)


class Text(fields.String):
    """A string without NUL characters."""

    def _deserialize(self, value, attr, data, **kwargs):
        text = super()._deserialize(value, attr, data, **kwargs)
        if "\x00" in text:
            raise ValidationError(NUL_MESSAGE)
        return text


class JsonObject(fields.Dict):
    """A JSON object that PostgreSQL's jsonb accepts."""

    def _deserialize(self, value, attr, data, **kwargs):
        mapping = super()._deserialize(value, attr, data, **kwargs)
        refuse_unstorable_json(mapping)
        return mapping
