"""POST /jobs/execute: run a template or a custom job document on devices."""

from __future__ import annotations

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from schemas.executions import JobExecution
from schemas.fields import JsonObject, Text
from schemas.policies import ExecutionPolicies, StoredPolicies
from schemas.vocabulary import TARGET_TYPES


class ExecuteJobRequest(ExecutionPolicies):
    """The seed's execute body. Exactly one of ``template_id`` and ``job_document``.

    Which of ``target_devices`` / ``target_filter`` goes with which ``target_type``, and whether
    the execution policies fit together (a template's are defaults, merged in first), are
    checked by the dispatcher (``dispatcher.jobs.create``), which every caller goes through.
    """

    job_name = Text(
        validate=validate.Length(min=1, max=256),
        metadata={"description": "Defaults to the template's name; required for a custom job."},
    )
    template_id = fields.Integer(strict=True, validate=validate.Range(min=1))
    job_document = JsonObject(metadata={"description": "A custom job document (v1.0)."})
    parameters = fields.Dict(
        keys=Text(), load_default=dict,
        metadata={"description": "Values for the document's {{NAME}} placeholders."},
    )
    target_type = fields.String(required=True, validate=validate.OneOf(TARGET_TYPES))
    target_devices = fields.List(fields.UUID(), validate=validate.Length(min=1))
    target_filter = JsonObject(
        metadata={"description": 'The filter language, e.g. {"device_type": "raspberry-pi", '
                  '"inventory.disk_free_mb": {"$gte": 500}} (see the README).'}
    )
    group = Text(validate=validate.Length(min=1, max=64), metadata={
        "description": "A named group (target_type group), instead of target_filter."})
    created_by = Text(validate=validate.Length(max=256))
    requires_approval = fields.Boolean(load_default=False, metadata={
        "description": "Hold the job until an admin approves it (POST .../approve); with "
                       "APPROVAL_BY_OTHER_ADMIN, an admin other than its creator."})

    @validates_schema
    def _one_document_source(self, data: dict, **kwargs) -> None:
        has_template, has_document = "template_id" in data, "job_document" in data
        if has_template and has_document:
            raise ValidationError("Give template_id or job_document, not both.", "job_document")
        if not has_template and not has_document:
            raise ValidationError("Give a template_id or a custom job_document.", "template_id")
        if has_document and not data.get("job_name"):
            raise ValidationError("A custom job_document needs a job_name.", "job_name")


class ExecutedJob(JobExecution):
    """The execution just created, as GET /jobs/executions/:jobId shows it (there with its live
    counters), with the state of its rollout when it is staged."""

    class Meta:
        fields = ("job_id", "job_name", "template_id", "status", "target_type", "target_filter",
                  "target_group", "execution_type", "total_devices", "fanout_status",
                  "queued_at", "created_by", "handler_steps", "requires_approval",
                  "rollout_state")

    rollout_state = fields.String(allow_none=True, metadata={
        "description": "A staged job's rollout: RUNNING, or WAITING_FOR_APPROVAL."})


class ExecuteJobResponse(Schema):
    job = fields.Nested(ExecutedJob, required=True)
    message = fields.String(required=True)


class ExecutePreview(StoredPolicies):
    """What an execute request would create, from POST /jobs/execute/preview (nothing stored)."""

    job_name = fields.String(required=True)
    template_id = fields.Integer(allow_none=True)
    job_document = fields.Dict(required=True, metadata={"description": "Rendered, as devices "
                               "would receive it."})
    parameters = fields.Dict(required=True)
    target_type = fields.String(required=True)
    target_devices = fields.List(fields.UUID(), allow_none=True)
    target_filter = fields.Dict(allow_none=True)
    target_group = fields.String(allow_none=True)
    total_devices = fields.Integer(
        required=True, metadata={"description": "Devices the target reaches now."}
    )
    status = fields.String(
        required=True, metadata={"description": "QUEUED, or SCHEDULED for a later start."}
    )
    next_run_at = fields.DateTime(allow_none=True, metadata={"description": "A recurring "
                                  "job's first run."})
