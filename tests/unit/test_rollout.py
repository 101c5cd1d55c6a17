"""How many held-back rows a rollout may release now."""

from __future__ import annotations

from dispatcher.policies.rollout import RolloutProgress, rate_per_minute, releasable_now

CONSTANT = {"maximum_per_minute": 100}


def exponential(criteria: dict, base: int = 10, factor: float = 2.0) -> dict:
    return {"exponential_rate": {"base_rate_per_minute": base, "increment_factor": factor,
                                 "rate_increase_criteria": criteria}}


def test_no_rollout_config_means_no_limit():
    assert releasable_now(None, RolloutProgress(0, 0, 0)) is None


def test_constant_rate_counts_what_the_last_minute_already_released():
    assert releasable_now(CONSTANT, RolloutProgress(0, 0, 0)) == 100
    assert releasable_now(CONSTANT, RolloutProgress(60, 60, 0)) == 40
    assert releasable_now(CONSTANT, RolloutProgress(100, 500, 0)) == 0
    assert releasable_now(CONSTANT, RolloutProgress(150, 500, 0)) == 0


def test_exponential_rate_grows_per_released_devices():
    config = exponential({"number_of_notified_devices": 50})
    assert rate_per_minute(config, released_devices=0, succeeded_devices=0) == 10
    assert rate_per_minute(config, released_devices=49, succeeded_devices=0) == 10
    assert rate_per_minute(config, released_devices=50, succeeded_devices=0) == 20
    assert rate_per_minute(config, released_devices=150, succeeded_devices=0) == 80


def test_exponential_rate_on_succeeded_devices_ignores_notifications():
    config = exponential({"number_of_succeeded_devices": 10}, base=5, factor=1.5)
    assert rate_per_minute(config, released_devices=1000, succeeded_devices=9) == 5
    assert rate_per_minute(config, released_devices=1000, succeeded_devices=20) == 11


def test_exponential_rate_never_exceeds_the_ceiling():
    config = exponential({"number_of_notified_devices": 1}, base=1000, factor=5)
    assert rate_per_minute(config, released_devices=10**9, succeeded_devices=0) == 10_000
