"""Target counts at execute time: maintained counts agree with the devices at every change."""

from __future__ import annotations

import pytest

from dispatcher import db
from dispatcher.devices import delete_device, register_device, update_device
from dispatcher.provisioning import bulk_register_devices
from dispatcher.targeting import count_target_devices, parse_target

FILTERS = [
    {"device_type": "raspberry-pi"},
    {"device_type": "gateway"},
    {"environment": "production"},
    {"environment": "staging"},
    {"device_type": "raspberry-pi", "environment": "production"},
    {"device_type": "gateway", "environment": "staging"},
    {"rack": 7},
    {"rack": 7.0},
    {"rack": "7"},
    {"canary": True},
    {"environment": "production", "rack": 7},
    {"tags": ["edge"]},
    {"location": {"site": "berlin"}},
]


def counted(target_type: str, target_filter: dict | None = None) -> int:
    with db.connect() as c:
        return count_target_devices(c, parse_target(target_type, None, target_filter))


def matching(target_filter: dict) -> int:
    """The truth: devices the fan-out's filter selects, counted row by row."""
    attributes = {k: v for k, v in target_filter.items() if k != "device_type"}
    with db.pool().connection() as conn:
        return conn.execute(
            "SELECT count(*) FROM devices WHERE attributes @> %s"
            " AND (%s::text IS NULL OR device_type = %s)",
            (db.jsonb(attributes), target_filter.get("device_type"),
             target_filter.get("device_type"))).fetchone()["count"]


def assert_counts_exact() -> None:
    with db.pool().connection() as conn:
        fleet = conn.execute("SELECT count(*) FROM devices").fetchone()["count"]
    assert counted("all") == fleet
    for target_filter in FILTERS:
        assert counted("group", target_filter) == matching(target_filter), target_filter


@pytest.fixture
def fleet(app) -> dict:
    bulk_register_devices(5, "raspberry-pi", {"environment": "production", "rack": 7})
    bulk_register_devices(3, "raspberry-pi", {"environment": "staging", "rack": "7"})
    bulk_register_devices(2, "gateway", {"environment": "production", "canary": True})
    tagged, _ = register_device("edge-1", "gateway", {
        "environment": "staging", "tags": ["edge", "lte"], "location": {"site": "berlin"}})
    plain, _ = register_device("plain-1")
    return {"tagged": tagged["uuid"], "plain": plain["uuid"]}


def test_counts_match_the_fleet_after_registration(fleet):
    assert counted("all") == 12
    assert counted("group", {"environment": "production"}) == 7
    assert counted("group", {"rack": 7}) == 5  # 7 and 7.0 are one number; "7" is a string
    assert_counts_exact()


def test_counts_follow_attribute_and_type_changes(fleet):
    update_device(fleet["plain"], {"device_type": "raspberry-pi",
                                   "attributes": {"environment": "production", "rack": 7}},
                  "admin:test")
    update_device(fleet["tagged"], {"attributes": {"environment": "production",
                                                   "tags": None}}, "admin:test")
    assert counted("group", {"device_type": "raspberry-pi", "environment": "production"}) == 6
    assert_counts_exact()


def test_counts_follow_deletions(fleet):
    delete_device(fleet["tagged"], "admin:test")
    delete_device(fleet["plain"], "admin:test")
    assert counted("all") == 10
    assert_counts_exact()


def test_a_device_seen_again_changes_no_count(fleet):
    before = counted("group", {"environment": "production"})
    with db.pool().connection() as conn:
        conn.execute("UPDATE devices SET last_seen_at = now()")
    assert counted("group", {"environment": "production"}) == before
    assert_counts_exact()
