"""The state table of DESIGN.md "Statuses": every pair of statuses, for both actors."""

from __future__ import annotations

import itertools

import pytest

from dispatcher import states
from dispatcher.states import Actor

# DESIGN.md's table written out by hand, so a change to states.TRANSITIONS must be deliberate.
DEVICE_ALLOWED = {
    ("QUEUED", "IN_PROGRESS"), ("QUEUED", "SUCCEEDED"), ("QUEUED", "FAILED"),
    ("QUEUED", "REJECTED"), ("IN_PROGRESS", "IN_PROGRESS"), ("IN_PROGRESS", "SUCCEEDED"),
    ("IN_PROGRESS", "FAILED"), ("IN_PROGRESS", "REJECTED"),
}
SERVER_ALLOWED = {
    ("QUEUED", "CANCELED"), ("QUEUED", "REMOVED"), ("QUEUED", "TIMED_OUT"),
    ("IN_PROGRESS", "TIMED_OUT"),
}
SERVER_ALLOWED_WITH_FORCE = SERVER_ALLOWED | {("IN_PROGRESS", "CANCELED")}
EVERY_PAIR = sorted(itertools.product(sorted(states.ALL_STATUSES), repeat=2))


@pytest.mark.parametrize(("source", "target"), EVERY_PAIR)
def test_device_transitions_follow_the_table(source, target):
    expected = (source, target) in DEVICE_ALLOWED
    assert states.is_allowed(source, target, Actor.DEVICE) is expected
    assert states.is_allowed(source, target, Actor.DEVICE, force=True) is expected


@pytest.mark.parametrize(("source", "target"), EVERY_PAIR)
def test_server_transitions_follow_the_table(source, target):
    assert states.is_allowed(source, target, Actor.SERVER) is ((source, target) in SERVER_ALLOWED)
    assert states.is_allowed(source, target, Actor.SERVER, force=True) is (
        (source, target) in SERVER_ALLOWED_WITH_FORCE
    )


@pytest.mark.parametrize("source", sorted(states.TERMINAL))
def test_nothing_leaves_a_terminal_status(source):
    for target, actor in itertools.product(states.ALL_STATUSES, Actor):
        assert not states.is_allowed(source, target, actor, force=True)


def test_sources_match_the_table():
    assert states.sources_for("SUCCEEDED", Actor.DEVICE) == ["QUEUED", "IN_PROGRESS"]
    assert states.sources_for("IN_PROGRESS", Actor.DEVICE) == ["QUEUED", "IN_PROGRESS"]
    assert states.sources_for("CANCELED", Actor.SERVER) == ["QUEUED"]
    assert states.sources_for("CANCELED", Actor.SERVER, force=True) == ["QUEUED", "IN_PROGRESS"]
    assert states.sources_for("CANCELED", Actor.DEVICE) == []


def test_devices_report_only_their_own_statuses():
    assert {"IN_PROGRESS", "SUCCEEDED", "FAILED", "REJECTED"} == states.DEVICE_REPORTABLE


def test_the_api_schemas_name_the_same_statuses():
    from schemas.device_jobs import DEVICE_REPORTED_STATUSES, DEVICE_STATUSES

    assert set(DEVICE_REPORTED_STATUSES) == states.DEVICE_REPORTABLE
    assert set(DEVICE_STATUSES) == states.ALL_STATUSES
