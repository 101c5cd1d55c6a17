"""Form fields to API request bodies, and errors back to the fields they belong to.

A form is turned into the body the API would take and loaded with the API's own schema, so a
form and an API call get the same field errors; the dispatcher's InvalidInput errors are shown
the same way.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from flask import flash, redirect, url_for
from marshmallow import Schema, ValidationError
from werkzeug.wrappers import Response

from api.json_body import parse_json_text
from dispatcher.errors import InvalidInput

FieldErrors = dict[str, list[str]]

_UUID_SEPARATORS = re.compile(r"[\s,]+")


def uuid_texts(text: str) -> list[str]:
    """The uuids typed in a field, separated by commas, spaces or lines (checked later)."""
    return [u for u in _UUID_SEPARATORS.split(text) if u]


def done(message: str, endpoint: str, **values: Any) -> Response:
    """A form's action went well: say so on the next page, the one ``endpoint`` shows."""
    flash(message, "ok")
    return redirect(url_for(endpoint, **values))


class FormInvalid(Exception):
    def __init__(self, errors: FieldErrors) -> None:
        super().__init__("; ".join(f"{k}: {' '.join(v)}" for k, v in errors.items()))
        self.errors = errors


def json_value(form: Mapping[str, str], name: str, errors: FieldErrors,
               default: object = None) -> object:
    """The JSON in text field ``name`` (``default`` when blank); a syntax error is noted."""
    text = (form.get(name) or "").strip()
    if not text:
        return default
    try:
        return parse_json_text(text)
    except ValueError as exc:
        errors.setdefault(name, []).append(f"Not valid JSON: {exc}")
        return default


def group_filter(form: Mapping[str, str], errors: FieldErrors) -> dict:
    """A group target_filter from the device type field and the attributes JSON field."""
    attributes = json_value(form, "attributes", errors, {})
    if not isinstance(attributes, dict):
        errors.setdefault("attributes", []).append("Must be a JSON object.")
        attributes = {}
    device_type = (form.get("device_type") or "").strip()
    return {**attributes, "device_type": device_type} if device_type else attributes


def flatten(messages: object, prefix: str = "") -> list[str]:
    """marshmallow's nested messages as readable lines: ``steps.0.input: Missing data``."""
    if isinstance(messages, Mapping):
        lines: list[str] = []
        for key, value in messages.items():
            lines.extend(flatten(value, f"{prefix}{key}."))
        return lines
    if isinstance(messages, list | tuple):
        lines = []
        for item in messages:
            lines.extend(flatten(item, prefix))
        return lines
    where = prefix.rstrip(".")
    return [f"{where}: {messages}" if where else str(messages)]


def field_errors(messages: Mapping, field_of: Mapping[str, str] | None = None) -> FieldErrors:
    """Top-level error keys mapped to form fields (``field_of``, else the key itself)."""
    errors: FieldErrors = {}
    for key, value in messages.items():
        field = (field_of or {}).get(key, key)
        errors.setdefault(field, []).extend(flatten(value))
    return errors


def load(schema: Schema, body: dict, field_of: Mapping[str, str] | None = None) -> dict:
    try:
        return schema.load(body)
    except ValidationError as exc:
        messages = exc.messages if isinstance(exc.messages, dict) else {"_schema": exc.messages}
        raise FormInvalid(field_errors(messages, field_of)) from None


def invalid_input_errors(exc: InvalidInput, field_of: Mapping[str, str] | None = None,
                         fallback: str = "_form") -> FieldErrors:
    """The dispatcher's refusal, by field; a message without fields goes to ``fallback``."""
    if exc.errors:
        return field_errors(exc.errors, field_of)
    return {fallback: [exc.message]}
