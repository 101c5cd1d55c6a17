"""Execution policies: the optional fields of an execute request and of a template.

Names and limits follow AWS IoT Jobs where it has the concept (``rollout_config``,
``abort_config``, ``timeout_config``, ``retry_config``, ``scheduling_config``), spelled in this
API's snake_case and with "devices" for AWS's "things". ``execution_type`` and ``schedule``
(recurring jobs) are this product's own.

Cron expressions have five fields, or six where the sixth is seconds (``* * * * * */10``
fires every ten seconds).
"""

from __future__ import annotations

from datetime import timezone
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from schemas.stages import StageList
from schemas.vocabulary import (
    CONTINUOUS,
    END_BEHAVIORS,
    EXECUTION_TYPES,
    FAILED,
    ONE_TIME,
    RECURRING,
    REJECTED,
    TARGET_ALL,
    TARGET_GROUP,
    TIMED_OUT,
)

# ALL: every failure type together.
ALL_FAILURES = "ALL"
ABORT_FAILURE_TYPES = (FAILED, REJECTED, TIMED_OUT, ALL_FAILURES)
RETRY_FAILURE_TYPES = (FAILED, TIMED_OUT, ALL_FAILURES)
MAX_ROLLOUT_RATE_PER_MINUTE = 10_000
MAX_IN_PROGRESS_TIMEOUT_MINUTES = 7 * 24 * 60
MAX_WINDOW_DURATION_MINUTES = 24 * 60
MAX_RETRIES_TOTAL = 10
# The policies given as one object each (or null), and every policy field of an execution.
POLICY_OBJECTS = ("schedule", "scheduling_config", "rollout_config", "abort_config",
                  "timeout_config", "retry_config")
POLICY_FIELDS = ("execution_type", *POLICY_OBJECTS, "stages")


def validate_step_timeout(minutes: int) -> None:
    """A device's ``step_timeout_minutes``: 1 to 7 days, or -1 to clear it."""
    if minutes != -1 and not 1 <= minutes <= MAX_IN_PROGRESS_TIMEOUT_MINUTES:
        raise ValidationError(
            f"Must be between 1 and {MAX_IN_PROGRESS_TIMEOUT_MINUTES}, or -1 to clear it."
        )


def validate_cron(expression: str) -> None:
    # croniter is the server's (only the API validates an execute request or a template): the
    # agent and the client import these schemas without it.
    from croniter import croniter

    if len(expression.split()) not in (5, 6) or not croniter.is_valid(expression):
        raise ValidationError(
            "Not a valid cron expression: five fields (minute hour day month weekday), "
            "or six with seconds last."
        )


def validate_timezone(name: str) -> None:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValidationError(f"Unknown time zone {name!r}.") from exc


def _time() -> fields.AwareDateTime:
    """An ISO 8601 instant; one without an offset is taken as UTC."""
    return fields.AwareDateTime(default_timezone=timezone.utc)


def _one_of(values: tuple[str, ...], **kwargs) -> fields.String:
    return fields.String(validate=validate.OneOf(values), **kwargs)


class ScheduleSchema(Schema):
    cron = fields.String(required=True, validate=validate_cron)
    timezone = fields.String(load_default="UTC", validate=validate_timezone)
    end_time = _time()
    max_runs = fields.Integer(validate=validate.Range(min=1, max=1_000_000))


class MaintenanceWindowSchema(Schema):
    start = fields.String(required=True, validate=validate_cron)
    duration_minutes = fields.Integer(
        required=True, validate=validate.Range(min=1, max=MAX_WINDOW_DURATION_MINUTES)
    )


class SchedulingConfigSchema(Schema):
    start_time = _time()
    end_time = _time()
    end_behavior = _one_of(END_BEHAVIORS)
    maintenance_windows = fields.List(
        fields.Nested(MaintenanceWindowSchema), validate=validate.Length(min=1, max=10)
    )
    # The zone the maintenance window crons are read in.
    timezone = fields.String(load_default="UTC", validate=validate_timezone)

    @validates_schema
    def _end_after_start(self, data: dict, **kwargs) -> None:
        start, end = data.get("start_time"), data.get("end_time")
        if start and end and end <= start:
            raise ValidationError("Must be after start_time.", "end_time")
        if data.get("end_behavior") and not end:
            raise ValidationError("Needs an end_time.", "end_behavior")


class RateIncreaseCriteriaSchema(Schema):
    number_of_notified_devices = fields.Integer(validate=validate.Range(min=1))
    number_of_succeeded_devices = fields.Integer(validate=validate.Range(min=1))

    @validates_schema
    def _exactly_one(self, data: dict, **kwargs) -> None:
        if len(data) != 1:
            raise ValidationError(
                "Give exactly one of number_of_notified_devices, number_of_succeeded_devices."
            )


class ExponentialRateSchema(Schema):
    base_rate_per_minute = fields.Integer(
        required=True, validate=validate.Range(min=1, max=MAX_ROLLOUT_RATE_PER_MINUTE)
    )
    increment_factor = fields.Float(required=True, validate=validate.Range(min=1.1, max=5))
    rate_increase_criteria = fields.Nested(RateIncreaseCriteriaSchema, required=True)


class RolloutConfigSchema(Schema):
    maximum_per_minute = fields.Integer(
        validate=validate.Range(min=1, max=MAX_ROLLOUT_RATE_PER_MINUTE)
    )
    exponential_rate = fields.Nested(ExponentialRateSchema)

    @validates_schema
    def _exactly_one(self, data: dict, **kwargs) -> None:
        if len(data) != 1:
            raise ValidationError("Give exactly one of maximum_per_minute, exponential_rate.")


class AbortCriterionSchema(Schema):
    failure_type = _one_of(ABORT_FAILURE_TYPES, required=True)
    action = _one_of(("CANCEL",), required=True)
    threshold_percentage = fields.Float(
        required=True, validate=validate.Range(min=0, max=100, min_inclusive=False)
    )
    min_number_of_executed_devices = fields.Integer(
        required=True, validate=validate.Range(min=1)
    )


class AbortConfigSchema(Schema):
    criteria_list = fields.List(
        fields.Nested(AbortCriterionSchema), required=True, validate=validate.Length(min=1, max=4)
    )

    @validates_schema
    def _unique_failure_types(self, data: dict, **kwargs) -> None:
        _require_unique_failure_types(data.get("criteria_list", []))


class TimeoutConfigSchema(Schema):
    in_progress_timeout_minutes = fields.Integer(
        required=True, validate=validate.Range(min=1, max=MAX_IN_PROGRESS_TIMEOUT_MINUTES)
    )


class RetryCriterionSchema(Schema):
    failure_type = _one_of(RETRY_FAILURE_TYPES, required=True)
    number_of_retries = fields.Integer(required=True, validate=validate.Range(min=0, max=10))


class RetryConfigSchema(Schema):
    """A failed device gets a new attempt while the criterion for its failure type (the exact
    type before ALL) has retries left; each type's retries are counted on their own, and an ALL
    criterion counts every failure retried."""

    criteria_list = fields.List(
        fields.Nested(RetryCriterionSchema), required=True, validate=validate.Length(min=1, max=3)
    )

    @validates_schema
    def _limits(self, data: dict, **kwargs) -> None:
        criteria = data.get("criteria_list", [])
        _require_unique_failure_types(criteria)
        if sum(c["number_of_retries"] for c in criteria) > MAX_RETRIES_TOTAL:
            raise ValidationError(
                f"At most {MAX_RETRIES_TOTAL} retries in total over all criteria.",
                "criteria_list",
            )


def _require_unique_failure_types(criteria: list[dict]) -> None:
    types = [c["failure_type"] for c in criteria]
    if len(types) != len(set(types)):
        raise ValidationError("Each failure_type may appear once.", "criteria_list")


class ExecutionPolicies(Schema):
    """The policy fields; execute-request and template schemas inherit them."""

    execution_type = _one_of(EXECUTION_TYPES)
    schedule = fields.Nested(ScheduleSchema)
    scheduling_config = fields.Nested(SchedulingConfigSchema)
    rollout_config = fields.Nested(RolloutConfigSchema)
    abort_config = fields.Nested(AbortConfigSchema)
    timeout_config = fields.Nested(TimeoutConfigSchema)
    retry_config = fields.Nested(RetryConfigSchema)
    stages = StageList(metadata={"description": "A staged rollout: canaries first, then the "
                                 "rest, each stage released once the one before passed its gate."})


def policy_combination_errors(values: dict, target_type: str | None = None) -> dict:
    """Field errors for policy values that clash with each other or with the target.

    Run on the final values (template defaults merged with the request), so a request may
    leave out what its template supplies.
    """
    errors: dict[str, list[str]] = {}
    kind = values.get("execution_type") or ONE_TIME
    if kind == RECURRING and not values.get("schedule"):
        errors["schedule"] = ["A recurring execution needs a schedule."]
    if kind != RECURRING and values.get("schedule"):
        errors["schedule"] = ["Only a recurring execution takes a schedule."]
    if kind == CONTINUOUS and target_type not in (None, TARGET_GROUP, TARGET_ALL):
        errors["execution_type"] = ["A continuous execution targets a group or all devices."]
    schedule = values.get("schedule") or {}
    start = (values.get("scheduling_config") or {}).get("start_time")
    if start and schedule.get("end_time") and schedule["end_time"] <= start:
        errors["schedule"] = ["end_time must be after scheduling_config.start_time."]
    return errors


class StoredPolicies(Schema):
    """The policy fields as an execution or a template shows them."""

    execution_type = fields.String(allow_none=True)
    stages = fields.List(fields.Dict(), allow_none=True)

    class Meta:
        include = {name: fields.Dict(allow_none=True) for name in POLICY_OBJECTS}
