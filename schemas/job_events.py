"""The audit trail of a job and the runs of a recurring job."""

from __future__ import annotations

from marshmallow import Schema, fields

from schemas.common import ListMeta


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


class RecurringRun(Schema):
    job_id = fields.UUID()
    job_name = fields.String()
    status = fields.String()
    scheduled_for = fields.DateTime(metadata={"description": "The cron slot this run fills."})
    total_devices = fields.Integer()
    queued_at = fields.DateTime()
    started_at = fields.DateTime(allow_none=True)
    completed_at = fields.DateTime(allow_none=True)


class RecurringRunList(ListMeta):
    runs = fields.List(fields.Nested(RecurringRun), required=True)
