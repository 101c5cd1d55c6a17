"""Policy fields: accepted shapes, field-level errors, and checks across fields."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from marshmallow import ValidationError

from schemas.policies import ExecutionPolicies, policy_combination_errors

SCHEMA = ExecutionPolicies()


def errors_of(body: dict) -> dict:
    with pytest.raises(ValidationError) as info:
        SCHEMA.load(body)
    return info.value.messages


def test_a_full_policy_set_loads_with_defaults():
    loaded = SCHEMA.load({
        "execution_type": "recurring",
        "schedule": {"cron": "0 3 * * *", "timezone": "Europe/Paris", "max_runs": 7},
        "scheduling_config": {
            "start_time": "2030-01-01T00:00:00Z", "end_time": "2030-02-01T00:00:00",
            "end_behavior": "CANCEL",
            "maintenance_windows": [{"start": "0 2 * * *", "duration_minutes": 60}],
        },
        "rollout_config": {"exponential_rate": {
            "base_rate_per_minute": 10, "increment_factor": 2,
            "rate_increase_criteria": {"number_of_succeeded_devices": 5}}},
        "abort_config": {"criteria_list": [{
            "failure_type": "ALL", "action": "CANCEL", "threshold_percentage": 12.5,
            "min_number_of_executed_devices": 10}]},
        "timeout_config": {"in_progress_timeout_minutes": 30},
        "retry_config": {"criteria_list": [{"failure_type": "TIMED_OUT", "number_of_retries": 3}]},
    })
    assert loaded["schedule"]["timezone"] == "Europe/Paris"
    assert loaded["scheduling_config"]["end_time"] == datetime(2030, 2, 1, tzinfo=UTC)
    assert loaded["scheduling_config"]["timezone"] == "UTC"


@pytest.mark.parametrize(
    ("body", "path"),
    [
        ({"execution_type": "sometimes"}, ["execution_type"]),
        ({"schedule": {"cron": "every day"}}, ["schedule", "cron"]),
        ({"schedule": {"cron": "* * * * *", "timezone": "Mars/Olympus"}},
         ["schedule", "timezone"]),
        ({"rollout_config": {"maximum_per_minute": 0}}, ["rollout_config", "maximum_per_minute"]),
        ({"rollout_config": {"maximum_per_minute": 10_001}},
         ["rollout_config", "maximum_per_minute"]),
        ({"rollout_config": {"exponential_rate": {
            "base_rate_per_minute": 10, "increment_factor": 9,
            "rate_increase_criteria": {"number_of_notified_devices": 5}}}},
         ["rollout_config", "exponential_rate", "increment_factor"]),
        ({"abort_config": {"criteria_list": [{
            "failure_type": "SLOW", "action": "CANCEL", "threshold_percentage": 10,
            "min_number_of_executed_devices": 1}]}},
         ["abort_config", "criteria_list", 0, "failure_type"]),
        ({"timeout_config": {"in_progress_timeout_minutes": 0}},
         ["timeout_config", "in_progress_timeout_minutes"]),
        ({"retry_config": {"criteria_list": [{"failure_type": "REJECTED",
                                              "number_of_retries": 1}]}},
         ["retry_config", "criteria_list", 0, "failure_type"]),
        ({"retry_config": {"criteria_list": [{"failure_type": "FAILED",
                                              "number_of_retries": 11}]}},
         ["retry_config", "criteria_list", 0, "number_of_retries"]),
        ({"scheduling_config": {"maintenance_windows": [{"start": "0 2 * * *",
                                                         "duration_minutes": 0}]}},
         ["scheduling_config", "maintenance_windows", 0, "duration_minutes"]),
    ],
)
def test_bad_values_are_named_down_to_the_field(body, path):
    errors = errors_of(body)
    for key in path:
        errors = errors[key]
    assert errors


def test_rollout_takes_exactly_one_rate_form():
    assert "_schema" in errors_of({"rollout_config": {}})["rollout_config"]
    both = {"maximum_per_minute": 5, "exponential_rate": {
        "base_rate_per_minute": 1, "increment_factor": 2,
        "rate_increase_criteria": {"number_of_notified_devices": 1}}}
    assert "_schema" in errors_of({"rollout_config": both})["rollout_config"]


def test_scheduling_end_must_follow_start_and_end_behavior_needs_an_end():
    errors = errors_of({"scheduling_config": {"start_time": "2030-01-02T00:00:00Z",
                                              "end_time": "2030-01-01T00:00:00Z"}})
    assert "end_time" in errors["scheduling_config"]
    errors = errors_of({"scheduling_config": {"end_behavior": "CANCEL"}})
    assert "end_behavior" in errors["scheduling_config"]


def test_retries_are_capped_in_total_and_failure_types_are_unique():
    too_many = [{"failure_type": "FAILED", "number_of_retries": 6},
                {"failure_type": "TIMED_OUT", "number_of_retries": 5}]
    assert "criteria_list" in errors_of({"retry_config": {"criteria_list": too_many}})[
        "retry_config"]
    twice = [{"failure_type": "FAILED", "number_of_retries": 1}] * 2
    assert "criteria_list" in errors_of({"retry_config": {"criteria_list": twice}})[
        "retry_config"]


def test_combinations_across_fields():
    assert "schedule" in policy_combination_errors({"execution_type": "recurring"})
    assert "schedule" in policy_combination_errors({"schedule": {"cron": "* * * * *"}})
    assert "execution_type" in policy_combination_errors(
        {"execution_type": "continuous"}, target_type="device")
    assert policy_combination_errors({"execution_type": "continuous"}, target_type="group") == {}
    assert policy_combination_errors({}, target_type="device") == {}
