"""The state table of DESIGN.md "Statuses": every pair of statuses, for both actors."""

from __future__ import annotations

import itertools

import pytest

from dispatcher.jobs import states
from dispatcher.jobs.states import Actor
from schemas import vocabulary

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
EVERY_PAIR = sorted(itertools.product(vocabulary.DEVICE_STATUSES, repeat=2))


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


@pytest.mark.parametrize("source", sorted(vocabulary.TERMINAL))
def test_nothing_leaves_a_terminal_status(source):
    for target, actor in itertools.product(vocabulary.DEVICE_STATUSES, Actor):
        assert not states.is_allowed(source, target, actor, force=True)


def test_sources_match_the_table():
    assert states.sources_for("SUCCEEDED", Actor.DEVICE) == ["QUEUED", "IN_PROGRESS"]
    assert states.sources_for("IN_PROGRESS", Actor.DEVICE) == ["QUEUED", "IN_PROGRESS"]
    assert states.sources_for("CANCELED", Actor.SERVER) == ["QUEUED"]
    assert states.sources_for("CANCELED", Actor.SERVER, force=True) == ["QUEUED", "IN_PROGRESS"]
    assert states.sources_for("CANCELED", Actor.DEVICE) == []


def test_devices_report_only_what_the_table_lets_them():
    by_device = {t.target for t in states.TRANSITIONS if t.actor is Actor.DEVICE}
    assert by_device == {"IN_PROGRESS", "SUCCEEDED", "FAILED", "REJECTED"}
    assert by_device == set(vocabulary.DEVICE_REPORTED)


def test_the_table_covers_every_status_and_no_other():
    named = {t.source for t in states.TRANSITIONS} | {t.target for t in states.TRANSITIONS}
    assert named == set(vocabulary.DEVICE_STATUSES)
    assert set(vocabulary.DEVICE_STATUSES) == vocabulary.PENDING | vocabulary.TERMINAL
