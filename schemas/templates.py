"""Job template request and response bodies.

A template's ``parameters`` declare its ``{{NAME}}`` placeholders: NAME → default string, or
null for "no default, the execution must supply it". Declaring is optional: a placeholder
without a declaration is simply required when the job is executed. A declared name that the
document never uses is refused (it is almost always a typo).
"""

from __future__ import annotations

from marshmallow import fields, validate

from schemas.common import ListMeta, PaginationQuery, Stored
from schemas.fields import Text
from schemas.job_document import validate_job_document
from schemas.policies import ExecutionPolicies, StoredPolicies

CATEGORIES = ("system", "maintenance", "deployment", "custom")
PARAMETER_NAME = validate.Regexp(
    r"^[A-Za-z_][A-Za-z0-9_]*\Z",
    error="Must be a placeholder name: a letter or '_', then letters, digits or '_'.",
)


class JobDocumentField(fields.Field):
    """A job document, loaded into its canonical form (see ``schemas.job_document``).

    The size limit is configurable, so it is checked where the setting is known, not here.
    """

    def _deserialize(self, value, attr, data, **kwargs):
        return validate_job_document(value, max_bytes=None)


def parameter_declaration(**kwargs) -> fields.Dict:
    return fields.Dict(
        keys=fields.String(validate=[validate.Length(max=64), PARAMETER_NAME]),
        values=Text(allow_none=True, validate=validate.Length(max=4096)),
        metadata={"description": "Placeholder NAME → default value, or null for no default."},
        **kwargs,
    )


class _TemplateFields(ExecutionPolicies):
    """Policy fields included: a template's policies are defaults for its executions."""

    name = Text(validate=validate.Length(min=1, max=128))
    description = Text(allow_none=True, validate=validate.Length(max=4096))
    category = fields.String(validate=validate.OneOf(CATEGORIES))
    job_document = JobDocumentField()
    parameters = parameter_declaration()
    is_active = fields.Boolean()


class TemplateCreate(_TemplateFields):
    name = Text(required=True, validate=validate.Length(min=1, max=128))
    category = fields.String(load_default="custom", validate=validate.OneOf(CATEGORIES))
    job_document = JobDocumentField(required=True)
    parameters = parameter_declaration(load_default=dict)
    is_active = fields.Boolean(load_default=True)
    created_by = Text(allow_none=True, validate=validate.Length(max=256))


class TemplateUpdate(_TemplateFields):
    """Any subset of the fields, as in the guide's ``{"description": ..., "is_active": false}``."""


class TemplateQuery(PaginationQuery):
    category = fields.String(validate=validate.OneOf(CATEGORIES))
    active = fields.Boolean()


class TemplateSchema(StoredPolicies, Stored):
    id = fields.Integer(required=True)
    name = fields.String(required=True)
    description = fields.String(allow_none=True)
    category = fields.String(required=True)
    job_document = fields.Dict(required=True)
    parameters = fields.Dict(required=True)
    created_by = fields.String(allow_none=True)
    is_active = fields.Boolean(required=True)


class TemplateUpdated(TemplateSchema):
    changed = fields.Dict(
        required=True, metadata={"description": 'Each changed field as {"from": ..., "to": ...}.'}
    )


class TemplateList(ListMeta):
    templates = fields.List(fields.Nested(TemplateSchema), required=True)
