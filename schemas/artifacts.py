"""Artifacts: request and response bodies, and how a job document refers to one.

A ``download-file`` step names an artifact with ``artifact:NAME`` (its newest upload of that
name) or ``artifact:ID`` as its URL. At execute the server pins the reference: the URL becomes
``artifact:ID``, the step's SHA256 argument the artifact's sha256, and ``input.artifact`` holds
``{id, name, sha256, size}``, all covered by the job's signature. The agent downloads only
what was pinned, from the API, and checks size and sha256 before the file appears.
Standard library only where the agent needs it (``artifact_reference``, ``artifact_pin``).
"""

from __future__ import annotations

import re

from marshmallow import Schema, fields, validate

from schemas.common import ListMeta
from schemas.fields import Text

ARTIFACT_SCHEME = "artifact:"
# The handler whose URL argument may name an artifact (or its ".sh" twin).
DOWNLOAD_HANDLER = "download-file"
SHA256_PATTERN = re.compile(r"^[0-9a-f]{64}\Z")
# Names a file can have on any system: no path separators, control characters or leading dot.
ARTIFACT_NAME_PATTERN = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._+@-]{0,254}\Z")


def artifact_reference(url: object) -> str | None:
    """What ``url`` names after ``artifact:`` (a name or an id); None when it is no reference."""
    if isinstance(url, str) and url.startswith(ARTIFACT_SCHEME):
        return url[len(ARTIFACT_SCHEME):]
    return None


def artifact_pin(step_input: dict) -> dict | None:
    """The artifact a step was pinned to at execute, when it is a well-formed pin."""
    pin = step_input.get("artifact")
    if (isinstance(pin, dict) and isinstance(pin.get("id"), str)
            and isinstance(pin.get("sha256"), str) and SHA256_PATTERN.match(pin["sha256"])
            and isinstance(pin.get("size"), int) and not isinstance(pin.get("size"), bool)
            and pin["size"] >= 0):
        return pin
    return None


class ArtifactUploadQuery(Schema):
    name = Text(required=True, validate=validate.Regexp(
        ARTIFACT_NAME_PATTERN, error="Must be 1-255 letters, digits, '.', '_', '+', '@' or "
                                     "'-', not starting with '.', '+', '@' or '-'."))
    sha256 = fields.String(validate=validate.Regexp(
        re.compile(r"^[0-9a-fA-F]{64}\Z"), error="Must be 64 hex digits."))


class ArtifactUse(Schema):
    job_id = fields.UUID()
    job_name = fields.String()
    status = fields.String()


class ArtifactSchema(Schema):
    id = fields.UUID()
    name = fields.String()
    size = fields.Integer()
    sha256 = fields.String()
    content_type = fields.String()
    created_by = fields.String()
    created_at = fields.DateTime()
    used_by = fields.List(fields.Nested(ArtifactUse))


class ArtifactList(ListMeta):
    artifacts = fields.List(fields.Nested(ArtifactSchema), required=True)
