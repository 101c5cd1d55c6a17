"""Device request and response bodies."""

from __future__ import annotations

import json

from marshmallow import Schema, ValidationError, fields, post_load, validate, validates

from schemas.common import ListMeta, PaginationQuery, Stored
from schemas.fields import JsonObject, Text, refuse_unstorable_json

DEVICE_TYPE = validate.Regexp(
    r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}\Z",
    error="Must be 1-64 letters, digits, '.', '_', ':' or '-', starting with a letter or digit.",
)
DEVICE_NAME = validate.Length(min=1, max=256)


def _no_device_type_attribute(attributes: dict) -> None:
    # device_type in a group filter always means the column, so as an attribute it could
    # never be matched.
    if "device_type" in attributes:
        raise ValidationError("device_type is a field of its own, not an attribute.")


class DeviceCreate(Schema):
    uuid = fields.UUID()
    device_name = Text(required=True, validate=DEVICE_NAME)
    device_type = Text(load_default="generic", validate=DEVICE_TYPE)
    attributes = JsonObject(load_default=dict, validate=_no_device_type_attribute)

    @validates("attributes")
    def _values_are_set(self, attributes: dict, **kwargs) -> None:
        # null in a PATCH removes an attribute, so it cannot also be a stored value.
        nulls = sorted(key for key, value in attributes.items() if value is None)
        if nulls:
            raise ValidationError(f"Attribute values must not be null: {', '.join(nulls)}.")


class DevicePatch(Schema):
    """Any subset of the fields; ``attributes`` merges key by key and null removes a key."""

    device_name = Text(validate=DEVICE_NAME)
    device_type = Text(validate=DEVICE_TYPE)
    attributes = JsonObject(validate=_no_device_type_attribute)


class JsonObjectText(fields.String):
    """A query-string parameter holding a JSON object, such as ``filter={"rack": "r1"}``."""

    def _deserialize(self, value, attr, data, **kwargs):
        text = super()._deserialize(value, attr, data, **kwargs)
        try:
            parsed = json.loads(text)
        except ValueError:
            raise ValidationError('Must be a JSON object, such as {"rack": "r1"}.') from None
        except RecursionError:
            raise ValidationError("Nested too deeply.") from None
        if not isinstance(parsed, dict):
            raise ValidationError("Must be a JSON object.")
        refuse_unstorable_json(parsed)
        return parsed


class DeviceListQuery(PaginationQuery):
    """Loads as ``{"target_filter": {...}, "limit", "offset"}``: one group filter."""

    device_type = Text(validate=validate.Length(min=1, max=64))
    filter = JsonObjectText(
        metadata={"description": 'Attribute filter, e.g. {"rack": "r1"}; a device_type key '
                  "matches the device type."}
    )

    @post_load
    def _one_group_filter(self, data: dict, **kwargs) -> dict:
        target_filter = data.pop("filter", {})
        if "device_type" in data:
            device_type = data.pop("device_type")
            if target_filter.get("device_type", device_type) != device_type:
                raise ValidationError("Disagrees with filter's device_type.", "device_type")
            target_filter["device_type"] = device_type
        data["target_filter"] = target_filter
        return data


class DeviceIdentity(Schema):
    """Which device, as every answer about one names it."""

    uuid = fields.UUID(required=True)
    device_name = fields.String(required=True)
    device_type = fields.String(required=True)
    attributes = fields.Dict(required=True)


class DeviceSchema(DeviceIdentity, Stored):
    last_seen_at = fields.DateTime(allow_none=True)
    inventory = fields.Dict(metadata={"description": "What the device reports about itself "
                                      "(its word, not the operator's attributes)."})
    inventory_updated_at = fields.DateTime(allow_none=True)


class DeviceCreated(DeviceSchema):
    device_token = fields.String(
        required=True, metadata={"description": "The device's bearer token, shown only once."}
    )


class DeviceUpdated(DeviceSchema):
    changed = fields.Dict(
        required=True, metadata={"description": 'Each changed field as {"from": ..., "to": ...}.'}
    )


class DeviceDeleted(DeviceSchema):
    removed_job_statuses = fields.Integer(required=True)


class DeviceToken(Schema):
    uuid = fields.UUID(required=True)
    device_token = fields.String(required=True)


class DeviceList(ListMeta):
    devices = fields.List(fields.Nested(DeviceSchema), required=True)
