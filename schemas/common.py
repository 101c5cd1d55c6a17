"""Schemas shared by every resource: pagination and the error shape."""

from __future__ import annotations

from marshmallow import Schema, fields, validate

from schemas.fields import load_default

LIST_LIMIT_MAX = 500
LIST_LIMIT_DEFAULT = 50


class PaginationQuery(Schema):
    limit = fields.Integer(
        **load_default(LIST_LIMIT_DEFAULT), validate=validate.Range(min=1, max=LIST_LIMIT_MAX)
    )
    offset = fields.Integer(**load_default(0), validate=validate.Range(min=0, max=10_000_000))


class Stored(Schema):
    """When a stored record was made and last changed."""

    created_at = fields.DateTime(required=True)
    updated_at = fields.DateTime(required=True)


class ListMeta(Schema):
    total = fields.Integer(required=True)
    limit = fields.Integer(required=True)
    offset = fields.Integer(required=True)
