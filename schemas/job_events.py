"""The audit trail of a job and the runs of a recurring job."""

from __future__ import annotations

from marshmallow import Schema, fields

from schemas.common import ListMeta
from schemas.executions import JobExecution


class JobEvent(Schema):
    id = fields.Integer()
    occurred_at = fields.DateTime()
    actor = fields.String()
    action = fields.String(metadata={"description": "What happened, e.g. job.created."})
    target_type = fields.String()
    target_id = fields.String()
    job_id = fields.UUID(allow_none=True)
    device_uuid = fields.UUID(allow_none=True)
    details = fields.Dict()


class JobEventList(ListMeta):
    events = fields.List(fields.Nested(JobEvent), required=True)


class RecurringRun(JobExecution):
    """A run of a recurring job: an execution of its own, as the list of runs shows it."""

    class Meta:
        fields = ("job_id", "job_name", "status", "scheduled_for", "total_devices", "queued_at",
                  "started_at", "completed_at")


class RecurringRunList(ListMeta):
    runs = fields.List(fields.Nested(RecurringRun), required=True)
