"""Job executions as an operator sees them: live counters, devices, cancel and retry."""

from __future__ import annotations

from marshmallow import Schema, fields, validate

from schemas.common import ListMeta, PaginationQuery
from schemas.device_jobs import REASON_MAX_CHARS, DeviceJobStatus
from schemas.fields import Text
from schemas.policies import StoredPolicies
from schemas.rollouts import Rollout
from schemas.vocabulary import DEVICE_STATUSES, JOB_STATUSES

# How a runHandler step of an executed job runs (``HandlerStep.source``).
PINNED = "pinned"
LOCAL = "local"


def _count(description: str) -> fields.Integer:
    return fields.Integer(metadata={"description": description})


class HandlerStep(Schema):
    """How a ``runHandler`` step of an executed job runs: ``pinned`` (the server's handler, run
    only as fixed at execute: content, interpreter, arguments) or ``local`` (a handler the
    server did not hold at execute, run from the device; an agent that runs signed jobs only
    never fetches it from the server)."""

    step = fields.String(required=True)
    handler = fields.String(required=True)
    source = fields.String(required=True, validate=validate.OneOf((PINNED, LOCAL)))
    args = fields.List(fields.String(), required=True)
    sha256 = fields.String()
    script_type = fields.String()


class JobExecution(StoredPolicies):
    """An execution with live per-status device counters (exact at the moment of the read),
    and its execution policies (as given, or taken from its template)."""

    job_id = fields.UUID()
    job_name = fields.String()
    template_id = fields.Integer(allow_none=True)
    job_document = fields.Dict()
    parameters = fields.Dict()
    target_type = fields.String()
    target_devices = fields.List(fields.UUID(), allow_none=True)
    target_filter = fields.Dict(allow_none=True)
    target_group = fields.String(allow_none=True)
    execution_type = fields.String()
    status = fields.String()
    total_devices = _count("Devices targeted.")
    succeeded_devices = _count("Devices whose latest execution SUCCEEDED.")
    failed_devices = _count("Devices whose latest execution FAILED, TIMED_OUT or was REJECTED.")
    in_progress_devices = _count("Devices running the job now.")
    queued_devices = _count("Devices that have not started the job yet.")
    canceled_devices = _count("Devices whose execution was CANCELED.")
    timed_out_devices = _count("Devices whose execution TIMED_OUT (part of failed_devices).")
    rejected_devices = _count("Devices that REJECTED the job (part of failed_devices).")
    removed_devices = _count("Devices REMOVED from the job.")
    requires_approval = fields.Boolean()
    fanout_status = fields.String(
        metadata={"description": "PENDING, RUNNING or DONE: whether every device has its row."}
    )
    reason = fields.String(allow_none=True)
    queued_at = fields.DateTime()
    started_at = fields.DateTime(allow_none=True)
    completed_at = fields.DateTime(allow_none=True)
    created_by = fields.String(allow_none=True)
    parent_job_id = fields.UUID(
        allow_none=True, metadata={"description": "The recurring job this execution is a run of."}
    )
    scheduled_for = fields.DateTime(allow_none=True, metadata={"description": "Its cron slot."})
    next_run_at = fields.DateTime(
        allow_none=True, metadata={"description": "A recurring job's next run."}
    )
    run_count = fields.Integer(metadata={"description": "Runs a recurring job has fired."})
    released_devices = fields.Integer(
        metadata={"description": "Devices a rollout has released (notified) so far."}
    )
    handler_steps = fields.List(
        fields.Nested(HandlerStep),
        metadata={"description": "Each runHandler step: pinned at execute, or local to the "
                                 "devices (never fetched from the server by a signing agent)."})
    signature_not_before = fields.DateTime(
        allow_none=True, metadata={"description": "Devices accept the signed job from then "
                                   "(null: unsigned)."})
    signature_not_after = fields.DateTime(
        allow_none=True, metadata={"description": "… until then (null: unsigned)."})


class JobExecutionSummary(JobExecution):
    """An execution in a list: without its document and device list."""

    class Meta:
        exclude = ("job_document", "parameters", "target_devices", "handler_steps",
                   "signature_not_before", "signature_not_after")


class ExecutionDeviceStatus(DeviceJobStatus):
    """One device's latest execution of the job at hand."""

    class Meta:
        exclude = ("job_id", "job_name", "is_latest")


class ExecutionListQuery(PaginationQuery):
    status = fields.String(validate=validate.OneOf(JOB_STATUSES))


class ExecutionList(ListMeta):
    executions = fields.List(fields.Nested(JobExecutionSummary), required=True)
    history_pruned_before = fields.DateTime(allow_none=True, metadata={
        "description": "Executions finished before this have been removed with their device "
                       "rows (RETENTION_DAYS); null when none has."})


class ExecutionDetail(Schema):
    job = fields.Nested(JobExecution, required=True)
    rollout = fields.Nested(Rollout, allow_none=True, metadata={
        "description": "The staged rollout; null for a job without stages."})
    device_statuses = fields.List(
        fields.Nested(ExecutionDeviceStatus),
        metadata={"description": "The first devices; see device_statuses_url for all."},
    )
    device_statuses_total = fields.Integer()
    device_statuses_url = fields.String(
        metadata={"description": "The paged list of every device of this execution."}
    )


class ExecutionDevicesQuery(PaginationQuery):
    status = fields.String(validate=validate.OneOf(DEVICE_STATUSES))


class ExecutionDeviceList(ListMeta):
    device_statuses = fields.List(
        fields.Nested(ExecutionDeviceStatus),
        required=True,
    )


class CancelRequest(Schema):
    force = fields.Boolean(
        load_default=False,
        metadata={"description": "Also cancel devices that are running the job (IN_PROGRESS)."},
    )
    reason = Text(allow_none=True, validate=validate.Length(max=REASON_MAX_CHARS))


class ExecutionCanceled(Schema):
    job = fields.Nested(JobExecution, required=True)
    canceled_devices = fields.Integer()
    message = fields.String()


class ExecutionRetried(Schema):
    job = fields.Nested(JobExecution, required=True)
    retried_devices = fields.Integer()
    message = fields.String()
