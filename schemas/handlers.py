"""Job handler request and response bodies."""

from __future__ import annotations

import re

from marshmallow import Schema, ValidationError, fields, validate

from schemas.common import ListMeta, Stored
from schemas.fields import Text, load_default

SCRIPT_TYPES = ("bash", "python", "node")
# A handler is stored on the device under its name: no path separators, no leading dot.
HANDLER_NAME_PATTERN = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}\Z")


def handler_names(name: str) -> list[str]:
    """The names ``name`` may stand for, in order: itself, then itself with or without ".sh"
    (``X.sh`` and ``X`` name the same handler when only one of them exists)."""
    other = name[:-3] if name.endswith(".sh") else name + ".sh"
    return [name, other] if HANDLER_NAME_PATTERN.match(other) else [name]
HANDLER_NAME = validate.Regexp(
    HANDLER_NAME_PATTERN,
    error="Must be 1-128 letters, digits, '.', '_' or '-', not starting with '.' or '-'.",
)


_OCTAL_MODE = re.compile(r"^[0-7]{3,4}\Z")


class Permissions(fields.Field):
    """File mode of the script on the device, octal: "700", "0755" (or the number 755)."""

    def _deserialize(self, value, attr, data, **kwargs):
        if isinstance(value, int) and not isinstance(value, bool):
            value = str(value)
        if not isinstance(value, str) or not _OCTAL_MODE.match(value):
            raise ValidationError('Must be an octal file mode such as "700" or "0755".')
        return value


class _HandlerFields(Schema):
    description = Text(allow_none=True, validate=validate.Length(max=4096))
    script_type = fields.String(validate=validate.OneOf(SCRIPT_TYPES))
    script_content = Text(validate=validate.Length(min=1))
    permissions = Permissions()
    default_args = fields.List(Text())


class HandlerCreate(_HandlerFields):
    name = Text(required=True, validate=HANDLER_NAME)
    script_type = fields.String(required=True, validate=validate.OneOf(SCRIPT_TYPES))
    script_content = Text(required=True, validate=validate.Length(min=1))
    permissions = Permissions(**load_default("700"))
    default_args = fields.List(Text(), **load_default(list))
    created_by = Text(allow_none=True, validate=validate.Length(max=256))


class HandlerUpdate(_HandlerFields):
    """Any subset of the fields; the name is the handler's identity and cannot change."""


class DeviceHandler(Schema):
    """What a device needs to install a handler and verify its script."""

    name = fields.String(required=True)
    script_type = fields.String(required=True)
    script_content = fields.String(required=True)
    script_sha256 = fields.String(required=True)
    permissions = fields.String(required=True)
    default_args = fields.List(fields.String(), required=True)


class HandlerSchema(DeviceHandler, Stored):
    id = fields.Integer(required=True)
    description = fields.String(allow_none=True)
    created_by = fields.String(allow_none=True)


class HandlerUpdated(HandlerSchema):
    changed = fields.Dict(required=True)


class HandlerSummary(HandlerSchema):
    """A handler without its script: lists stay small however long the scripts are."""

    class Meta:
        exclude = ("script_content",)


class HandlerList(ListMeta):
    handlers = fields.List(fields.Nested(HandlerSummary), required=True)
