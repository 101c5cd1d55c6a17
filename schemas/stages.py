"""Stages of a staged rollout: the ``stages`` of an execute request or a template.

A stage is sized by ``count`` (devices) or ``percent`` (of the job's devices, rounded up; a
sized stage has at least one device); the last stage may give neither and takes the rest. A
stage may choose its devices by its own ``target_filter`` among those no earlier stage took.
Its ``gate`` says when it passed (enough SUCCEEDED, and ``soak_seconds`` later) or failed
(failures above ``max_failure_percent`` once ``min_completed`` devices finished); a stage
without a gate passes when every device SUCCEEDED.
"""

from __future__ import annotations

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from schemas.fields import JsonObject, Text
from schemas.vocabulary import ON_SUCCESS, ON_SUCCESS_CONTINUE

MAX_STAGES = 20
MAX_STAGE_TIMEOUT_MINUTES = 7 * 24 * 60
MAX_SOAK_SECONDS = 7 * 24 * 3600


def _percent(**kwargs) -> fields.Float:
    return fields.Float(validate=validate.Range(min=0, max=100), **kwargs)


class GateSchema(Schema):
    """When a released stage passed, failed, or has waited long enough for silent devices."""

    min_completed = fields.Integer(
        strict=True, validate=validate.Range(min=0), load_default=1,
        metadata={"description": "Devices that must have finished before failures count."})
    min_success_percent = _percent(load_default=100.0, metadata={
        "description": "SUCCEEDED devices needed to pass, in percent of the stage."})
    max_failure_percent = _percent(load_default=0.0, metadata={
        "description": "Failures (FAILED, TIMED_OUT, REJECTED) above this percent of the "
                       "stage fail the gate at once."})
    soak_seconds = fields.Integer(
        strict=True, validate=validate.Range(min=0, max=MAX_SOAK_SECONDS), load_default=0,
        metadata={"description": "How long the stage must hold its numbers before it passes."})
    on_success = fields.String(validate=validate.OneOf(ON_SUCCESS),
                               load_default=ON_SUCCESS_CONTINUE)
    stage_timeout_minutes = fields.Integer(
        strict=True, validate=validate.Range(min=1, max=MAX_STAGE_TIMEOUT_MINUTES),
        metadata={"description": "Devices of the stage still pending this long after its "
                                 "release become TIMED_OUT."})


class StageSchema(Schema):
    name = Text(required=True, validate=validate.Length(min=1, max=64))
    count = fields.Integer(strict=True, validate=validate.Range(min=1))
    percent = fields.Float(validate=validate.Range(min=0, max=100, min_inclusive=False))
    target_filter = JsonObject(metadata={
        "description": "Chooses the stage's devices among those no earlier stage took."})
    gate = fields.Nested(GateSchema)

    @validates_schema
    def _one_size(self, data: dict, **kwargs) -> None:
        if "count" in data and "percent" in data:
            raise ValidationError("Give count or percent, not both.", "percent")


def stage_list_errors(stages: list[dict]) -> list[str]:
    """What is wrong with a list of stages as a whole (each stage being valid on its own)."""
    errors = []
    names = [stage["name"] for stage in stages]
    if len(set(names)) != len(names):
        errors.append("Stage names must be unique.")
    for number, stage in enumerate(stages):
        last = number == len(stages) - 1
        sized = "count" in stage or "percent" in stage
        if not sized and not last:
            errors.append(f"Stage {stage['name']!r} needs a count or a percent: only the last "
                          "stage may take the rest.")
        if not sized and last and stage.get("target_filter"):
            errors.append(f"Stage {stage['name']!r} takes every device left: it cannot have a "
                          "target_filter.")
    return errors


class StageList(fields.List):
    """The ``stages`` field: 1 to MAX_STAGES stages, checked as a whole."""

    def __init__(self, **kwargs) -> None:
        super().__init__(fields.Nested(StageSchema), validate=[
            validate.Length(min=1, max=MAX_STAGES), self._whole], **kwargs)

    @staticmethod
    def _whole(stages: list[dict]) -> None:
        errors = stage_list_errors(stages)
        if errors:
            raise ValidationError(errors)
