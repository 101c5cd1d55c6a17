"""The stage options of ``dispatcher jobs execute``."""

from __future__ import annotations

import argparse

import pytest

from client.command import UsageError
from client.rollout_commands import add_stage_options, parse_stage, stage_fields


def options(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_stage_options(parser)
    return parser.parse_args(list(argv))


@pytest.mark.parametrize("spec, stage", [
    ("canary:2", {"name": "canary", "count": 2}),
    ("ten:10%", {"name": "ten", "percent": 10.0}),
    ("10%", {"name": "10%", "percent": 10.0}),
    ("5", {"name": "5", "count": 5}),
    ("rest", {"name": "rest"}),
])
def test_a_stage_spec(spec, stage):
    assert parse_stage(spec) == stage


def test_a_bad_size_is_a_usage_error():
    with pytest.raises(UsageError, match="a count"):
        parse_stage("canary:two")


def test_the_gate_goes_on_every_stage_with_its_numbers_typed():
    fields = stage_fields(options("--stage", "canary:2", "--stage", "10%", "--stage", "rest",
                                  "--gate", "max_failure_percent=0", "--gate", "min_completed=2",
                                  "--requires-approval"))
    gate = {"max_failure_percent": 0.0, "min_completed": 2}
    assert fields == {"requires_approval": True, "stages": [
        {"name": "canary", "count": 2, "gate": gate}, {"name": "10%", "percent": 10.0,
                                                        "gate": gate},
        {"name": "rest", "gate": gate}]}


def test_a_gate_without_stages_is_a_usage_error():
    with pytest.raises(UsageError):
        stage_fields(options("--gate", "soak_seconds=60"))
