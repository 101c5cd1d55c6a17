"""A staged rollout as the API shows it (GET /jobs/executions/:jobId and the rollout actions)."""

from __future__ import annotations

from marshmallow import Schema, fields

from schemas.vocabulary import ROLLOUT_STATES, STAGE_STATES


class RolloutStage(Schema):
    name = fields.String(required=True)
    size = fields.Integer(required=True, metadata={"description": "Devices in the stage."})
    state = fields.String(required=True, metadata={"enum": list(STAGE_STATES)})
    succeeded = fields.Integer(required=True)
    failed = fields.Integer(required=True, metadata={
        "description": "FAILED, TIMED_OUT and REJECTED devices."})
    in_progress = fields.Integer(required=True)
    queued = fields.Integer(required=True)
    released_at = fields.DateTime(allow_none=True)
    finished_at = fields.DateTime(allow_none=True)
    soak_until = fields.DateTime(allow_none=True, metadata={
        "description": "A stage that passed its numbers passes its gate at this time."})
    acknowledged_failures = fields.Integer(metadata={
        "description": "Failures an operator acknowledged by resuming after a failed gate."})


class Rollout(Schema):
    state = fields.String(required=True, metadata={"enum": list(ROLLOUT_STATES)})
    reason = fields.String(required=True, metadata={"description": "Why, in words."})
    current_stage = fields.Integer(required=True)
    requires_approval = fields.Boolean()
    approved_by = fields.String(allow_none=True)
    approved_at = fields.DateTime(allow_none=True)
    stages = fields.List(fields.Nested(RolloutStage), required=True)
