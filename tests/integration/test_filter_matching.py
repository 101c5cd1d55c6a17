"""The filter language against real devices: every operator on every kind of value, type
mismatches, missing keys and hostile values, with one answer wherever a filter is used (device
list, count, execute preview, fan-out)."""

from __future__ import annotations

import json

import pytest

from dispatcher import db
from dispatcher.fleet.devices import list_devices
from dispatcher.fleet.filters import compile_filter, counts_from_signatures, parse_target_filter
from dispatcher.jobs.targeting import count_target_devices, parse_target

DEVICES = {
    "a": ("raspberry-pi",
          {"site": "berlin", "environment": "production", "tags": ["canary", "edge"], "rack": 7,
           "role": "canary", "hw": {"rev": 2}},
          {"os": {"id": "debian", "version_id": "12"}, "disk_free_mb": 900, "arch": "aarch64",
           "model": "Raspberry Pi 4 Model B", "agent_version": "1.4.0"},
          "now()"),
    "b": ("raspberry-pi",
          {"site": "muc-1", "environment": "production", "tags": ["edge"], "rack": "7",
           "role": "worker"},
          {"os": {"id": "debian", "version_id": "11"}, "disk_free_mb": 300,
           "model": "Raspberry Pi 3"},
          "now() - interval '2 hours'"),
    "c": ("gateway",
          {"site": "hamburg", "environment": "staging", "rack": 7.0, "quo'te\"key": "q"},
          {"os": {"version_id": 12}, "disk_free_mb": "lots"},
          "NULL"),
    "d": ("gateway", {}, {}, "NULL"),
    "e": ("raspberry-pi",
          {"site": "berlin-2", "comment": "'; DROP TABLE devices; --"},
          {"note": "$.a ? (@ > 1)", "disk_free_mb": 500},
          "NULL"),
}
ALL = set(DEVICES)

CASES = [
    ({}, ALL),
    # today's filters, unchanged
    ({"device_type": "raspberry-pi"}, {"a", "b", "e"}),
    ({"device_type": "raspberry-pi", "environment": "production"}, {"a", "b"}),
    ({"tags": ["edge"]}, {"a", "b"}),
    ({"hw": {"rev": 2}}, {"a"}),
    ({"hw": {}}, {"a"}),
    # $eq: numbers as numbers, strings as strings, other types never equal
    ({"rack": 7}, {"a", "c"}),
    ({"rack": {"$eq": 7.0}}, {"a", "c"}),
    ({"rack": "7"}, {"b"}),
    ({"rack": {"$in": [7.00, "7"]}}, {"a", "b", "c"}),
    ({"tags": "edge"}, set()),
    ({"tags": {"$contains": "edge"}, "device_type": "raspberry-pi", "rack": 7}, {"a"}),
    ({"quo'te\"key": "q"}, {"c"}),
    ({"inventory.os.version_id": 12}, {"c"}),
    ({"inventory.os.version_id": {"$in": ["12", 12]}}, {"a", "c"}),
    ({"$not": {"inventory.os.version_id": "12", "device_type": "raspberry-pi"}},
     {"b", "c", "d", "e"}),
    ({"$or": [{"site": "berlin"}, {"system.type": {"$in": ["gateway"]}}]}, {"a", "c", "d"}),
    ({"rack": True}, set()),
    ({"site": None}, set()),
    ({"inventory.os": {"$eq": {"id": "debian"}}}, {"a", "b"}),
    ({"system.name": "dev-a"}, {"a"}),
    ({"system.type": "gateway"}, {"c", "d"}),
    ({"system.agent_version": "1.4.0"}, {"a"}),
    # $ne: only devices that have the key, differing in value or type
    ({"rack": {"$ne": 7}}, {"b"}),
    ({"role": {"$ne": "canary"}}, {"b"}),
    ({"$or": [{"role": {"$ne": "canary"}}, {"role": {"$exists": False}}]}, {"b", "c", "d", "e"}),
    ({"system.type": {"$ne": "gateway"}}, {"a", "b", "e"}),
    # ranges
    ({"rack": {"$gt": 6}}, {"a", "c"}),
    ({"rack": {"$gt": "6"}}, {"b"}),
    ({"rack": {"$gte": 7}}, {"a", "c"}),
    ({"rack": {"$lt": 7}}, set()),
    ({"rack": {"$lte": 7}}, {"a", "c"}),
    ({"inventory.disk_free_mb": {"$gte": 500}}, {"a", "e"}),
    ({"inventory.disk_free_mb": {"$gt": 500}}, {"a"}),
    ({"inventory.disk_free_mb": {"$lt": 500}}, {"b"}),
    ({"inventory.disk_free_mb": {"$lte": 500, "$gte": 300}}, {"b", "e"}),
    ({"site": {"$gte": "berlin", "$lt": "c"}}, {"a", "e"}),
    ({"system.name": {"$gt": "dev-c"}}, {"d", "e"}),
    ({"tags": {"$gt": 5}}, set()),
    ({"hw": {"$lt": "z"}}, set()),
    # $not of a missing key is true, never NULL
    ({"$not": {"inventory.disk_free_mb": {"$gte": 500}}}, {"b", "c", "d"}),
    ({"$not": {"role": "canary"}}, {"b", "c", "d", "e"}),
    ({"$not": {"system.last_seen_at": {"$gte": "-PT1H"}}}, {"b", "c", "d", "e"}),
    # $in and $nin
    ({"inventory.os.version_id": {"$in": ["11", "12"]}}, {"a", "b"}),
    ({"inventory.os.version_id": {"$in": [12]}}, {"c"}),
    ({"inventory.os.version_id": {"$nin": ["11"]}}, {"a", "c"}),
    ({"system.type": {"$in": ["gateway", "nope"]}}, {"c", "d"}),
    ({"system.type": {"$nin": ["gateway"]}}, {"a", "b", "e"}),
    ({"rack": {"$in": [7, "7"]}}, {"a", "b", "c"}),
    # $exists
    ({"role": {"$exists": True}}, {"a", "b"}),
    ({"role": {"$exists": False}}, {"c", "d", "e"}),
    ({"inventory.os.id": {"$exists": True}}, {"a", "b"}),
    ({"system.last_seen_at": {"$exists": False}}, {"c", "d", "e"}),
    # $prefix: strings only, no wildcards
    ({"site": {"$prefix": "muc-"}}, {"b"}),
    ({"site": {"$prefix": "berlin"}}, {"a", "e"}),
    ({"rack": {"$prefix": "7"}}, {"b"}),
    ({"site": {"$prefix": "%"}}, set()),
    ({"site": {"$prefix": "_"}}, set()),
    ({"system.name": {"$prefix": "dev-"}}, ALL),
    # $contains: an element of a list, or a substring of a string
    ({"tags": {"$contains": "canary"}}, {"a"}),
    ({"tags": {"$contains": "edge"}}, {"a", "b"}),
    ({"inventory.model": {"$contains": "Pi 4"}}, {"a"}),
    ({"inventory.os": {"$contains": "debian"}}, set()),
    ({"site": {"$contains": "erli"}}, {"a", "e"}),
    ({"system.name": {"$contains": "-e"}}, {"e"}),
    ({"tags": {"$contains": 5}}, set()),
    # logic
    ({"$or": [{"site": "berlin"}, {"site": {"$prefix": "muc-"}}]}, {"a", "b"}),
    ({"$and": [{"device_type": "raspberry-pi"}, {"environment": "production"}]}, {"a", "b"}),
    ({"$and": [{"$or": [{"rack": 7}, {"rack": "7"}]}, {"$not": {"site": "hamburg"}}]},
     {"a", "b"}),
    # times on the server's columns
    ({"system.last_seen_at": {"$gte": "-PT1H"}}, {"a"}),
    ({"system.last_seen_at": {"$gte": "-PT3H"}}, {"a", "b"}),
    ({"system.created_at": {"$gte": "2000-01-01T00:00:00Z", "$lt": "P1D"}}, ALL),
    ({"system.created_at": {"$lt": "2000-01-01T00:00:00Z"}}, set()),
    # dotted keys are paths; quotes are characters
    ({"hw.rev": 2}, {"a"}),
    ({"hw.rev": {"$gt": 1}}, {"a"}),
    ({"hw.rev.deeper": {"$exists": True}}, set()),
    ({"quo'te\"key": "q"}, {"c"}),
    # hostile values are values
    ({"comment": "'; DROP TABLE devices; --"}, {"e"}),
    ({"comment": {"$contains": "DROP TABLE"}}, {"e"}),
    ({"inventory.note": "$.a ? (@ > 1)"}, {"e"}),
    ({"site": "' OR 1=1 --"}, set()),
    ({"site": {"$in": ["' OR ''='", "berlin"]}}, {"a"}),
    ({"{{target_filter}}": "%(limit)s"}, set()),
    # the example, and without its $not
    ({"device_type": "raspberry-pi", "environment": "production",
      "inventory.os.version_id": {"$in": ["11", "12"]}, "inventory.disk_free_mb": {"$gte": 500},
      "system.last_seen_at": {"$gte": "-PT1H"}, "tags": {"$contains": "canary"},
      "$or": [{"site": "berlin"}, {"site": {"$prefix": "muc-"}}],
      "$not": {"role": "canary"}}, set()),
    ({"device_type": "raspberry-pi", "environment": "production",
      "inventory.os.version_id": {"$in": ["11", "12"]}, "inventory.disk_free_mb": {"$gte": 500},
      "system.last_seen_at": {"$gte": "-PT1H"}, "tags": {"$contains": "canary"},
      "$or": [{"site": "berlin"}, {"site": {"$prefix": "muc-"}}]}, {"a"}),
]


@pytest.fixture
def fleet(app):
    uuids = {}
    with db.pool().connection() as conn:
        for name, (device_type, attributes, inventory, last_seen) in DEVICES.items():
            row = conn.execute(
                "INSERT INTO devices (uuid, device_name, device_type, attributes, inventory,"
                f" token_hash, last_seen_at) VALUES (gen_random_uuid(), %s, %s, %s, %s,"
                f" uuid_send(gen_random_uuid()), {last_seen}) RETURNING uuid",
                (f"dev-{name}", device_type, json.dumps(attributes), json.dumps(inventory)),
            ).fetchone()
            uuids[row["uuid"]] = name
    return uuids


def names_listed(fleet: dict, target_filter: dict) -> set[str]:
    page = list_devices(target_filter, limit=50, offset=0)
    assert page["total"] == len(page["devices"])
    return {fleet[d["uuid"]] for d in page["devices"]}


@pytest.mark.parametrize("target_filter, expected", CASES, ids=[json.dumps(c[0])[:60]
                                                                 for c in CASES])
def test_a_filter_matches_the_devices_it_says(fleet, target_filter, expected):
    assert names_listed(fleet, target_filter) == expected
    if target_filter:
        # The execute preview counts what the list shows (from signatures or devices).
        assert count_target_devices(parse_target("group", None, target_filter)) == len(expected)


def test_counting_from_signatures_agrees_with_the_devices(fleet):
    for target_filter, expected in CASES:
        tree = parse_target_filter(target_filter)
        if not counts_from_signatures(tree) or not target_filter:
            continue
        with db.connect() as c:
            on_devices = c.row_filtered("count_matching_devices",
                                        {"target_filter": compile_filter(tree, "t")})["n"]
        assert on_devices == len(expected), target_filter


def test_values_never_enter_the_sql_text(app):
    hostile = ["' OR 1=1 --", "$.a ? (@ > 1)", "DROP TABLE", "berlin", "muc-", "quo'te"]
    target_filter = {"site": {"$in": hostile}, "quo'te": {"$prefix": "muc-"},
                     "inventory.x": {"$contains": "DROP TABLE", "$gt": "berlin"},
                     "system.name": {"$ne": "' OR 1=1 --"}}
    predicate = compile_filter(parse_target_filter(target_filter), "t")
    with db.pool().connection() as conn:
        text = predicate.sql.as_string(conn)
    for value in hostile:
        assert value not in text
    assert "%(t_0)s::jsonb" in text


@pytest.mark.parametrize("target_filter, index", [
    ({"site": "berlin"}, "devices_attributes_gin"),
    ({"site": {"$in": ["berlin", "hamburg"]}}, "devices_attributes_gin"),
    ({"tags": {"$contains": 5}}, "devices_attributes_gin"),
    ({"inventory.os.version_id": "12"}, "devices_inventory_gin"),
    ({"inventory.disk_free_mb": {"$gte": 500}, "inventory.arch": "aarch64"},
     "devices_inventory_gin"),
    ({"device_type": "gateway"}, "devices_type_idx"),
    ({"system.type": {"$in": ["gateway", "pi"]}}, "devices_type_idx"),
])
def test_exact_matches_use_an_index(fleet, target_filter, index):
    predicate = compile_filter(parse_target_filter(target_filter), "t")
    with db.pool().connection() as conn, conn.transaction():
        conn.execute("SET LOCAL enable_seqscan = off")
        statement = db._fill_slots("count_matching_devices", {"target_filter": predicate}, {})
        plan = conn.execute(b"EXPLAIN " + statement[0].as_bytes(conn), statement[1]).fetchall()
    assert index in "\n".join(row["QUERY PLAN"] for row in plan)


def test_a_filter_no_index_serves_is_stopped_and_says_so(app):
    with db.pool().connection() as conn:
        conn.execute(
            "INSERT INTO devices (uuid, device_name, attributes, inventory, token_hash)"
            " SELECT gen_random_uuid(), 'bulk-' || i, '{}', jsonb_build_object('disk_free_mb', i),"
            " uuid_send(gen_random_uuid()) FROM generate_series(1, 50000) AS i")
    from dispatcher.errors import InvalidInput

    with pytest.raises(InvalidInput) as refused:
        list_devices({"inventory.disk_free_mb": {"$gte": 0}}, limit=1, offset=0, timeout_ms=1)
    assert "no index serves it" in refused.value.message
    # Unbounded by default, the same search answers.
    assert list_devices({"inventory.disk_free_mb": {"$gte": 49990}}, 50, 0)["total"] == 11


def test_the_api_answers_400_naming_the_wrong_part(client, admin_headers, fleet):
    bad = {"site": {"$in": []}}
    listed = client.get("/api/v1/devices", query_string={"filter": json.dumps(bad)},
                        headers=admin_headers)
    assert listed.status_code == 400
    assert listed.get_json()["errors"] == {"filter": {"site.$in": [
        "Must be a non-empty list of values."]}}
    executed = client.post("/api/v1/jobs/execute", headers=admin_headers, json={
        "job_name": "x", "target_type": "group", "target_filter": {"$or": [{"a": {"$gt": []}}]},
        "job_document": {"version": "1.0", "steps": [
            {"name": "s", "type": "runCommand", "input": {"command": "true"}}]}})
    assert executed.status_code == 400
    assert executed.get_json()["errors"] == {"target_filter": {"$or[0].a.$gt": [
        "Compares only a number or a string."]}}
