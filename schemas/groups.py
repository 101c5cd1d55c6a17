"""Named groups of devices: a dynamic group stores a filter (the filter language), a static
group lists devices. Addressed by name."""

from __future__ import annotations

from marshmallow import Schema, fields, validate

from schemas.common import ListMeta
from schemas.fields import JsonObject, Text

GROUP_NAME = validate.Regexp(
    r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}\Z",
    error="Must be 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit.",
)


class GroupCreate(Schema):
    """Exactly one of ``filter`` (dynamic) and ``devices`` (static)."""

    name = Text(required=True, validate=GROUP_NAME)
    description = Text(load_default="", validate=validate.Length(max=1024))
    filter = JsonObject(metadata={"description": "The filter language (see the README); the "
                                  "group's members follow it."})
    devices = fields.List(fields.UUID(), validate=validate.Length(max=100_000))


class GroupPatch(Schema):
    description = Text(validate=validate.Length(max=1024))
    filter = JsonObject()
    devices = fields.List(fields.UUID(), validate=validate.Length(max=100_000))


class GroupSchema(Schema):
    name = fields.String(required=True)
    description = fields.String(required=True)
    kind = fields.String(required=True, metadata={"description": "dynamic or static"})
    filter = fields.Dict(allow_none=True)
    created_by = fields.String(required=True)
    created_at = fields.DateTime(required=True)
    updated_at = fields.DateTime(required=True)
    member_count = fields.Integer(required=True, allow_none=True, metadata={
        "description": "Devices in the group now. In a list, null for a group not counted "
                       "within the page's time budget (a filter no index serves, on a large "
                       "fleet); the group itself always answers its count."})


class GroupDetail(GroupSchema):
    member_count = fields.Integer(required=True, metadata={
        "description": "Devices in the group now."})
    devices = fields.List(fields.UUID(), metadata={"description": "A static group's devices."})


class GroupList(ListMeta):
    groups = fields.List(fields.Nested(GroupSchema), required=True)


class DeviceSearch(Schema):
    """``POST /devices/search``: a page of the devices a filter matches."""

    filter = JsonObject(load_default=dict)
    limit = fields.Integer(load_default=50, validate=validate.Range(min=1, max=500))
    offset = fields.Integer(load_default=0, validate=validate.Range(min=0, max=10_000_000))
