"""Cron slots, the catch-up policy and maintenance windows."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from dispatcher.policies import schedules


def is_inside_window(windows: list[dict], now: datetime, timezone: str = "UTC") -> bool:
    window = schedules.current_or_next_window(windows, now, timezone)
    return window.opens_at <= now < window.closes_at

T0 = datetime(2025, 1, 6, 12, 0, 0, tzinfo=UTC)  # a Monday, noon UTC
EVERY_5_S = "* * * * * */5"


def test_next_slot_is_strictly_after_and_latest_slot_includes_now():
    assert schedules.next_slot(EVERY_5_S, T0) == T0 + timedelta(seconds=5)
    assert schedules.latest_slot(EVERY_5_S, T0) == T0
    assert schedules.latest_slot(EVERY_5_S, T0 + timedelta(seconds=4.9)) == T0


def test_slots_follow_the_time_zone_across_a_dst_change():
    # 03:00 Paris time is 02:00 UTC in winter and 01:00 UTC in summer.
    before = datetime(2025, 3, 29, 0, 0, tzinfo=UTC)
    first = schedules.next_slot("0 3 * * *", before, "Europe/Paris")
    second = schedules.next_slot("0 3 * * *", first, "Europe/Paris")
    assert first.astimezone(UTC).hour == 2
    assert second.astimezone(UTC).hour == 1


def test_slots_between_is_half_open_and_ordered():
    slots = schedules.slots_between(EVERY_5_S, T0, T0 + timedelta(seconds=15))
    assert slots == [T0 + timedelta(seconds=s) for s in (5, 10, 15)]


def test_on_time_firing_fires_the_due_slot_and_plans_the_next():
    firing = schedules.plan_firing(EVERY_5_S, "UTC", T0, T0 + timedelta(seconds=1))
    assert firing.slot == T0
    assert firing.skipped_slots == 0
    assert firing.next_run_at == T0 + timedelta(seconds=5)


def test_catch_up_fires_once_for_the_latest_missed_slot():
    # Beat was down for 60 s: 13 slots passed, one run is fired, 12 are reported as skipped.
    firing = schedules.plan_firing(EVERY_5_S, "UTC", T0, T0 + timedelta(seconds=62))
    assert firing.slot == T0 + timedelta(seconds=60)
    assert firing.skipped_slots == 12
    assert firing.next_run_at == T0 + timedelta(seconds=65)


def test_nothing_fires_before_the_due_slot():
    firing = schedules.plan_firing(EVERY_5_S, "UTC", T0, T0 - timedelta(seconds=1))
    assert firing.slot is None
    assert firing.next_run_at == T0


def test_the_last_allowed_run_ends_the_schedule():
    firing = schedules.plan_firing(EVERY_5_S, "UTC", T0, T0, runs_left=1)
    assert firing.slot == T0
    assert firing.next_run_at is None


def test_end_time_during_an_outage_fires_the_last_slot_before_the_end():
    end = T0 + timedelta(seconds=12)
    firing = schedules.plan_firing(EVERY_5_S, "UTC", T0, T0 + timedelta(minutes=5), end_time=end)
    assert firing.slot == T0 + timedelta(seconds=10)
    assert firing.next_run_at is None


def test_first_run_counts_a_start_exactly_on_a_slot():
    assert schedules.first_run_at(EVERY_5_S, "UTC", T0) == T0
    assert schedules.first_run_at("0 * * * *", "UTC", T0, T0 + timedelta(minutes=30)) == T0
    assert schedules.first_run_at("30 * * * *", "UTC", T0 + timedelta(minutes=31),
                                  T0 + timedelta(minutes=40)) is None


NIGHTLY = [{"start": "0 2 * * *", "duration_minutes": 120}]


@pytest.mark.parametrize(
    ("hour", "minute", "inside"),
    [(1, 59, False), (2, 0, True), (3, 59, True), (4, 0, False), (12, 0, False)],
)
def test_inside_a_nightly_window_only_between_its_start_and_its_end(hour, minute, inside):
    now = datetime(2025, 1, 6, hour, minute, tzinfo=UTC)
    assert is_inside_window(NIGHTLY, now) is inside


def test_current_window_or_the_next_one():
    now = datetime(2025, 1, 6, 12, 0, tzinfo=UTC)
    upcoming = schedules.current_or_next_window(NIGHTLY, now)
    assert upcoming.opens_at == datetime(2025, 1, 7, 2, 0, tzinfo=UTC)
    assert upcoming.closes_at == datetime(2025, 1, 7, 4, 0, tzinfo=UTC)
    windows = NIGHTLY + [{"start": "0 13 * * *", "duration_minutes": 30}]
    assert schedules.current_or_next_window(windows, now).opens_at == now.replace(hour=13)


def test_windows_are_read_in_their_time_zone():
    tokyo_night = [{"start": "0 2 * * *", "duration_minutes": 60}]
    at = datetime(2025, 1, 5, 17, 30, tzinfo=UTC)  # 02:30 in Tokyo
    assert is_inside_window(tokyo_night, at, "Asia/Tokyo")
    assert not is_inside_window(tokyo_night, at, "UTC")


def test_naive_times_are_refused():
    with pytest.raises(ValueError):
        schedules.next_slot(EVERY_5_S, datetime(2025, 1, 1))
