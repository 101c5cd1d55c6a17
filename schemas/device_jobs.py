"""The device protocol (poll answer and status report) and a device's job history."""

from __future__ import annotations

from marshmallow import Schema, fields, validate

from schemas.common import ListMeta, PaginationQuery
from schemas.fields import JsonObject, Text
from schemas.policies import validate_step_timeout
from schemas.vocabulary import DEVICE_REPORTED, DEVICE_STATUSES

REASON_MAX_CHARS = 4096


class NextJob(Schema):
    """The poll answer: the job to run (camelCase, as in the seed), or ``message`` when none."""

    job_id = fields.UUID(data_key="jobId")
    job_name = fields.String(data_key="jobName")
    job_document = fields.Dict(data_key="jobDocument")
    device_uuid = fields.UUID(data_key="deviceUuid")
    queued_at = fields.DateTime(data_key="queuedAt")
    execution_number = fields.Integer(data_key="executionNumber")
    version_number = fields.Integer(data_key="versionNumber")
    status = fields.String()
    job_document_signature = fields.String(
        data_key="jobDocumentSignature", allow_none=True,
        metadata={"description": "Base64 Ed25519 signature of signedJob, this device's own for "
                                 "a device-list target (null when the server signs nothing); "
                                 "see README, Security."},
    )
    signed_job = fields.String(
        data_key="signedJob", allow_none=True,
        metadata={"description": "The exact text the signature covers: the job id, validity "
                                 "window and pinned document (schemas.document_signing). A "
                                 "signing agent runs this document, not jobDocument."},
    )
    parent_job_id = fields.UUID(
        data_key="parentJobId", allow_none=True,
        metadata={"description": "The recurring job this execution is a run of."},
    )
    message = fields.String(metadata={"description": '"No pending jobs" when there is none.'})
    poll_after_seconds = fields.Integer(
        data_key="pollAfterSeconds", metadata={"description": "When to poll next."}
    )


class StatusReport(Schema):
    """A device's report on its execution of a job (the seed's snake_case body)."""

    status = fields.String(required=True, validate=validate.OneOf(DEVICE_REPORTED))
    exit_code = fields.Integer(allow_none=True, strict=True,
                               validate=validate.Range(-(2**31), 2**31 - 1))
    stdout = Text(allow_none=True, metadata={"description": "Only the last bytes are kept."})
    stderr = Text(allow_none=True, metadata={"description": "Only the last bytes are kept."})
    reason = Text(allow_none=True, validate=validate.Length(max=REASON_MAX_CHARS))
    executed_steps = fields.Integer(allow_none=True, validate=validate.Range(0, 10_000))
    failed_step = Text(allow_none=True, validate=validate.Length(max=REASON_MAX_CHARS))
    status_details = JsonObject(allow_none=True)
    step_timeout_minutes = fields.Integer(
        allow_none=True, validate=validate_step_timeout,
        metadata={"description": "With IN_PROGRESS: time out unless the device reports again "
                                 "within this many minutes; -1 clears it."},
    )
    expected_version = fields.Integer(
        allow_none=True, validate=validate.Range(1, 2**31 - 1),
        metadata={"description": "Refuse the report (409) unless the row is at this version."},
    )


class DeviceJobStatus(Schema):
    """One device's execution of one job (one execution number)."""

    job_id = fields.UUID()
    job_name = fields.String()
    device_uuid = fields.UUID()
    device_name = fields.String()
    status = fields.String()
    execution_number = fields.Integer()
    version_number = fields.Integer()
    is_latest = fields.Boolean()
    queued_at = fields.DateTime()
    started_at = fields.DateTime(allow_none=True)
    completed_at = fields.DateTime(allow_none=True)
    last_updated_at = fields.DateTime()
    exit_code = fields.Integer(allow_none=True)
    stdout = fields.String(allow_none=True)
    stderr = fields.String(allow_none=True)
    stdout_truncated = fields.Boolean()
    stderr_truncated = fields.Boolean()
    reason = fields.String(allow_none=True)
    executed_steps = fields.Integer(allow_none=True)
    failed_step = fields.String(allow_none=True)
    status_details = fields.Dict(allow_none=True)


class DeviceJobListQuery(PaginationQuery):
    status = fields.String(validate=validate.OneOf(DEVICE_STATUSES))


class DeviceJobList(ListMeta):
    jobs = fields.List(fields.Nested(DeviceJobStatus), required=True)
