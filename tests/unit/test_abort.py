"""Abort criteria against per-status counts."""

from __future__ import annotations

from dispatcher.policies.abort import abort_reason, met_criterion

FAILED_20 = {"failure_type": "FAILED", "action": "CANCEL", "threshold_percentage": 20,
             "min_number_of_executed_devices": 10}
ANY_50 = {"failure_type": "ALL", "action": "CANCEL", "threshold_percentage": 50,
          "min_number_of_executed_devices": 4}


def test_threshold_reached_once_enough_devices_executed():
    config = {"criteria_list": [FAILED_20]}
    assert met_criterion(config, {"SUCCEEDED": 7, "FAILED": 2}) is None  # 9 executed < 10
    assert met_criterion(config, {"SUCCEEDED": 8, "FAILED": 2}) == FAILED_20  # 20% of 10
    assert met_criterion(config, {"SUCCEEDED": 9, "FAILED": 2}) is None  # 18%


def test_queued_canceled_and_removed_rows_do_not_count_as_executed():
    config = {"criteria_list": [FAILED_20]}
    counts = {"QUEUED": 1000, "CANCELED": 50, "REMOVED": 5, "SUCCEEDED": 4, "FAILED": 5}
    assert met_criterion(config, counts) is None


def test_all_adds_up_every_failure_type_and_other_types_do_not_mix():
    assert met_criterion({"criteria_list": [ANY_50]},
                         {"FAILED": 1, "REJECTED": 1, "TIMED_OUT": 1, "SUCCEEDED": 3}) == ANY_50
    only_rejected = {**ANY_50, "failure_type": "REJECTED"}
    assert met_criterion({"criteria_list": [only_rejected]},
                         {"FAILED": 3, "REJECTED": 1, "SUCCEEDED": 2}) is None


def test_no_config_never_aborts_and_the_reason_names_the_share():
    assert met_criterion(None, {"FAILED": 100}) is None
    reason = abort_reason(FAILED_20, {"SUCCEEDED": 8, "FAILED": 2})
    assert "20.0% of 10" in reason and "FAILED" in reason
