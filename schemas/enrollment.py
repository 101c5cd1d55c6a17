"""Enrollment tokens, a device's enrollment, and pending enrollments."""

from __future__ import annotations

from marshmallow import Schema, ValidationError, fields, validate, validates

from schemas.common import ListMeta
from schemas.devices import DEVICE_NAME, DEVICE_TYPE, DeviceCreate, DeviceIdentity
from schemas.fields import JsonObject, Text

HARDWARE_ID = validate.Regexp(
    r"^[A-Za-z0-9._:-]{8,128}\Z",
    error="Must be 8-128 letters, digits, '.', '_', ':' or '-' (the agent sends a hash).",
)


class EnrollmentTokenCreate(Schema):
    name = Text(required=True, validate=validate.Length(min=1, max=256))
    expires_at = fields.AwareDateTime(
        load_default=None, allow_none=True,
        metadata={"description": "After this, the token is refused; null: never."})
    max_uses = fields.Integer(
        load_default=None, allow_none=True, strict=True,
        validate=validate.Range(min=1, max=10_000_000),
        metadata={"description": "How many enrollments it buys; null: any number."})
    device_type = Text(load_default="generic", validate=DEVICE_TYPE)
    attributes = JsonObject(load_default=dict, metadata={
        "description": "Every device enrolled with it gets these attributes."})
    requires_acceptance = fields.Boolean(
        load_default=False,
        metadata={"description": "Devices wait as pending enrollments for an operator."})

    @validates("attributes")
    def _as_a_device_has_them(self, attributes: dict, **kwargs) -> None:
        # The attributes a registered device may have (no device_type key, no null value).
        problems = DeviceCreate().validate({"device_name": "-", "attributes": attributes})
        if "attributes" in problems:
            raise ValidationError(problems["attributes"])


class EnrollmentTokenSchema(Schema):
    id = fields.Integer(required=True)
    name = fields.String(required=True)
    expires_at = fields.DateTime(allow_none=True)
    max_uses = fields.Integer(allow_none=True)
    uses = fields.Integer(required=True)
    device_type = fields.String(required=True)
    attributes = fields.Dict(required=True)
    requires_acceptance = fields.Boolean(required=True)
    created_by = fields.String(allow_none=True)
    created_at = fields.DateTime(required=True)
    revoked_at = fields.DateTime(allow_none=True)


class EnrollmentTokenCreated(EnrollmentTokenSchema):
    enrollment_token = fields.String(
        required=True, metadata={"description": "The token, shown only this once."})


class EnrollmentTokenList(ListMeta):
    enrollment_tokens = fields.List(fields.Nested(EnrollmentTokenSchema), required=True)


class EnrollRequest(Schema):
    enrollment_token = Text(required=True, validate=validate.Length(min=1, max=256))
    hardware_id = Text(required=True, validate=HARDWARE_ID, metadata={
        "description": "A hash of what identifies the hardware (/etc/machine-id, the Pi's "
                       "serial): the same hardware enrolling again gets the same device."})
    device_name = Text(required=True, validate=DEVICE_NAME)


class MqttCredentials(Schema):
    url = fields.String(required=True, metadata={
        "description": "The broker devices connect to (no credentials in it)."})
    username = fields.String(required=True, metadata={"description": "The device's uuid."})
    password = fields.String(required=True, metadata={
        "description": "Derived from the device token: a new token means a new password."})
    ready = fields.Boolean(required=True, metadata={
        "description": "Whether the broker knows them now; else `problem` says why and the "
                       "device asks again with POST /devices/{uuid}/mqtt-credentials."})
    problem = fields.String(metadata={"description": "Why they do not work yet."})


class EnrollAnswer(DeviceIdentity):
    status = fields.String(required=True, validate=validate.OneOf(("accepted", "pending")),
                           metadata={"description": "pending: an operator must accept it."})
    device_token = fields.String(required=True, metadata={
        "description": "The device's bearer token, shown only this once (valid once accepted)."})
    mqtt = fields.Nested(MqttCredentials, metadata={
        "description": "The device's own MQTT login (it may subscribe to its notify topic "
                       "only), when the server issues them (MQTT_ADMIN_URL)."})


class PendingEnrollmentSchema(DeviceIdentity):
    requested_at = fields.DateTime()
    enrollment_token_name = fields.String(allow_none=True)


class PendingEnrollmentList(ListMeta):
    pending_enrollments = fields.List(fields.Nested(PendingEnrollmentSchema), required=True)
