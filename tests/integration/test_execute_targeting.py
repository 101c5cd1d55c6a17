"""Target counts at execute time: maintained counts agree with the devices at every change."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from job_rows import bulk_register_devices, quietly

from dispatcher import db
from dispatcher.fleet.devices import delete_device, register_device, update_device
from dispatcher.jobs.targeting import count_target_devices, parse_target

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
    {"device_type": "gateway", "environment": "staging", "canary": True},
    {"environment": "production", "rack": 7, "canary": True},
    {"environment": "staging", "location": {"site": "berlin"}},
    {"location": {"site": "berlin", "floor": 2}},
    {"location": {}},
    {"tags": ["lte", "edge"]},
    {"tags": []},
    {"device_type": "gateway", "tags": ["edge"], "location": {"site": "berlin"}},
]
EXECUTE = "/api/v1/jobs/execute"
DIAGNOSTIC = {
    "version": "1.0",
    "steps": [{"name": "Check disk space", "type": "runCommand", "input": {"command": "df,-h"}}],
}


def counted(target_type: str, target_filter: dict | None = None) -> int:
    with db.connect() as c:
        return count_target_devices(parse_target(target_type, None, target_filter), c)


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
        # Every device in exactly one signature, and no signature without a device.
        drift = conn.execute(
            "SELECT count(*) FROM (SELECT device_type, attributes::text, count(*) AS n"
            " FROM devices GROUP BY 1, 2) d"
            " FULL JOIN device_signatures s"
            " ON s.device_type = d.device_type AND s.attributes::text = d.attributes"
            " WHERE s.n IS DISTINCT FROM d.n").fetchone()["count"]
    assert drift == 0
    assert counted("all") == fleet
    for target_filter in FILTERS:
        assert counted("group", target_filter) == matching(target_filter), target_filter


@pytest.fixture
def fleet(app) -> dict:
    bulk_register_devices(5, "raspberry-pi", {"environment": "production", "rack": 7})
    bulk_register_devices(3, "raspberry-pi", {"environment": "staging", "rack": "7"})
    bulk_register_devices(2, "gateway", {"environment": "production", "canary": True})
    tagged, _ = quietly(register_device("edge-1", "gateway", {
        "environment": "staging", "tags": ["edge", "lte"], "location": {"site": "berlin"}}))
    quietly(register_device("edge-2", "gateway", {
        "environment": "staging", "canary": True, "tags": ["edge"],
        "location": {"site": "berlin", "floor": 2}}))
    plain, _ = quietly(register_device("plain-1"))
    return {"tagged": tagged["uuid"], "plain": plain["uuid"]}


def test_counts_match_the_fleet_after_registration(fleet):
    assert counted("all") == 13
    assert counted("group", {"environment": "production"}) == 7
    assert counted("group", {"rack": 7}) == 5  # 7 and 7.0 are one number; "7" is a string
    assert counted("group", {"environment": "staging", "location": {"site": "berlin"}}) == 2
    assert counted("group", {"location": {"floor": 2}}) == 1
    assert counted("group", {"tags": ["lte", "edge"]}) == 1
    assert counted("group", {"device_type": "gateway", "tags": ["edge"]}) == 2
    assert_counts_exact()


@pytest.mark.parametrize("target_filter, expected", [
    ({"device_type": "raspberry-pi", "environment": "production", "rack": 7}, 5),
    ({"environment": "staging", "tags": ["edge"], "location": {"site": "berlin"}}, 2),
    ({"location": {"site": "berlin", "floor": 2}, "canary": True}, 1),
])
def test_execute_answers_the_count_of_a_many_key_filter(client, admin_headers, fleet,
                                                        target_filter, expected):
    response = client.post(EXECUTE, headers=admin_headers, json={
        "job_name": "diagnose", "job_document": DIAGNOSTIC,
        "target_type": "group", "target_filter": target_filter})
    assert response.status_code == 201, response.get_json()
    answer = response.get_json()
    assert answer["job"]["total_devices"] == expected
    assert answer["message"] == f"Job created and queued for {expected} device(s)"


def test_bulk_registration_joins_and_adds_signatures(fleet):
    bulk_register_devices(4, "raspberry-pi", {"environment": "production", "rack": 7})
    bulk_register_devices(6, "raspberry-pi", {"environment": "production", "rack": 8,
                                              "location": {"site": "lisbon"}})
    assert counted("group", {"environment": "production", "rack": 7}) == 9
    assert counted("group", {"device_type": "raspberry-pi",
                             "location": {"site": "lisbon"}}) == 6
    assert_counts_exact()


def test_counts_follow_attribute_and_type_changes(fleet):
    quietly(update_device(fleet["plain"], {"device_type": "raspberry-pi",
                                   "attributes": {"environment": "production", "rack": 7}},
                  "admin:test"))
    untagged = {"attributes": {"environment": "production", "tags": None}}
    quietly(update_device(fleet["tagged"], untagged, "admin:test"))
    assert counted("group", {"device_type": "raspberry-pi", "environment": "production"}) == 6
    assert_counts_exact()


def test_attribute_patch_moves_a_device_between_signatures(client, admin_headers, fleet):
    path = f"/api/v1/devices/{fleet['tagged']}"
    response = client.patch(path, headers=admin_headers, json={
        "attributes": {"location": {"site": "lisbon"}, "canary": True}})
    assert response.status_code == 200, response.get_json()
    assert counted("group", {"location": {"site": "berlin"}}) == 1
    assert counted("group", {"location": {"site": "lisbon"}, "canary": True}) == 1
    response = client.patch(path, headers=admin_headers, json={
        "device_type": "raspberry-pi", "attributes": {"location": None, "tags": None}})
    assert response.status_code == 200, response.get_json()
    assert counted("group", {"device_type": "raspberry-pi", "canary": True}) == 1
    assert_counts_exact()


def test_concurrent_registrations_edits_and_deletions_stay_exact(fleet):
    """Threads register into shared and new signatures, move and delete devices at once."""
    start = threading.Barrier(6)

    def register(worker: int) -> list:
        start.wait()
        added = []
        for i in range(15):
            attributes = {"environment": "production", "rack": i % 3}
            if i % 5 == 0:
                attributes["location"] = {"site": f"site-{worker}"}
            added.append(quietly(register_device(f"w{worker}-{i}", "raspberry-pi", attributes))[0])
            if i % 4 == 0:
                bulk_register_devices(3, "gateway", {"environment": "staging", "rack": i % 2},
                                      name_prefix=f"w{worker}-bulk-{i}")
        for device in added[::3]:
            quietly(update_device(device["uuid"], {"attributes": {"rack": 9}}, "admin:test"))
        for device in added[1::3]:
            quietly(delete_device(device["uuid"], "admin:test"))
        return added

    with ThreadPoolExecutor(max_workers=6) as pool:
        list(pool.map(register, range(6)))
    assert counted("group", {"environment": "production", "rack": 9}) == 6 * 5
    assert_counts_exact()


def test_counts_follow_deletions(fleet):
    quietly(delete_device(fleet["tagged"], "admin:test"))
    quietly(delete_device(fleet["plain"], "admin:test"))
    assert counted("all") == 11
    assert_counts_exact()


def test_a_device_seen_again_changes_no_count(fleet):
    before = counted("group", {"environment": "production"})
    with db.pool().connection() as conn:
        conn.execute("UPDATE devices SET last_seen_at = now()")
    assert counted("group", {"environment": "production"}) == before
    assert_counts_exact()
