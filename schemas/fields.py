"""Fields whose values can always be stored in PostgreSQL.

PostgreSQL refuses text and jsonb containing NUL characters or lone surrogates (``"\\ud800"``
decodes from JSON but cannot be encoded as UTF-8), and jsonb refuses NaN and Infinity.
Rejecting them at the edge turns what would be a database error into a 400 that names the
field.
"""

from __future__ import annotations

import inspect
import math
from typing import Any

from marshmallow import ValidationError, fields

NUL_MESSAGE = "Must not contain NUL characters."
SURROGATE_MESSAGE = "Must be valid Unicode text (no lone surrogates)."

# marshmallow 3.13 renamed a field's ``missing`` to ``load_default``. The agent's schemas run on
# Debian's own marshmallow, which is 3.10 on Bullseye, so they name the default through this.
_DEFAULT_KEYWORD = (
    "load_default" if "load_default" in inspect.signature(fields.Field.__init__).parameters
    else "missing"
)


def load_default(value: object) -> dict[str, Any]:
    """A field's keyword arguments for ``value`` when the input lacks it, on any marshmallow 3."""
    return {_DEFAULT_KEYWORD: value}


def refuse_unstorable_text(text: str) -> None:
    """Raise ValidationError if ``text`` holds a NUL or a lone surrogate."""
    if "\x00" in text:
        raise ValidationError(NUL_MESSAGE)
    if not text.isascii():
        try:
            text.encode()
        except UnicodeEncodeError:
            raise ValidationError(SURROGATE_MESSAGE) from None


def refuse_unstorable_json(value: object) -> None:
    """Raise ValidationError if ``value`` holds a NUL character or a non-finite number anywhere."""
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, str):
            refuse_unstorable_text(item)
        elif isinstance(item, float):
            if not math.isfinite(item):
                raise ValidationError("Numbers must be finite.")
        elif isinstance(item, dict):
            pending.extend(item.keys())
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)


class Text(fields.String):
    """A string without NUL characters or lone surrogates."""

    def _deserialize(self, value, attr, data, **kwargs):
        text = super()._deserialize(value, attr, data, **kwargs)
        refuse_unstorable_text(text)
        return text


class JsonObject(fields.Dict):
    """A JSON object that PostgreSQL's jsonb accepts."""

    def _deserialize(self, value, attr, data, **kwargs):
        mapping = super()._deserialize(value, attr, data, **kwargs)
        refuse_unstorable_json(mapping)
        return mapping
