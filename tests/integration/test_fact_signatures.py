"""Fact signatures: a filter on the device type, attributes and summarised inventory facts is
counted from the maintained signatures, with the very count the devices give, and the
signatures follow every way a device changes (registration, inventory reports in both modes,
attribute and type edits, deletion), the devices registered before the migration included."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime

import psycopg
from job_rows import bulk_register_devices
from suite_constants import PG_ADMIN_URL
from test_filter_matching import CASES, fleet  # noqa: F401 - the shared fleet fixture

from dispatcher import db
from dispatcher.fleet.devices import delete_device, register_device, update_device
from dispatcher.fleet.filters import (
    compile_filter,
    counts_from_fact_signatures,
    counts_from_signatures,
    parse_target_filter,
)
from dispatcher.fleet.inventory import report_inventory
from dispatcher.jobs.targeting import count_target_devices, parse_target, summarised_facts
from dispatcher.migrate import available_migrations, migrate
from dispatcher.poll.sightings import Sightings

# Devices whose summarised facts differ in the ways a filter can tell apart: missing facts, a
# JSON null, numbers written two ways, lists, an os that is not an object, keys beside the
# summarised ones.
MORE_DEVICES = {
    "f": ("raspberry-pi", {"site": "berlin", "environment": "production"},
          {"os": {"id": "debian", "version_id": "12", "pretty_name": "Debian GNU/Linux 12",
                  "codename": "bookworm"},
           "kernel": "6.1.0-9-arm64", "arch": "aarch64", "agent_version": 7,
           "python_version": "3.11.2", "memory_mb": 3793, "disk_free_mb": 10,
           "model": "Raspberry Pi 4 Model B"}),
    "g": ("raspberry-pi", {"site": "berlin", "environment": "production"},
          {"os": {"id": "debian", "version_id": "12", "pretty_name": "Debian GNU/Linux 12"},
           "kernel": "6.1.0-9-arm64", "arch": "aarch64", "agent_version": 7.0,
           "python_version": None, "memory_mb": 3793.0, "disk_free_mb": 20,
           "model": "Raspberry Pi 4 Model B"}),
    "h": ("gateway", {"site": "muc-2"},
          {"os": "linux", "kernel": ["6.1", "lts"], "arch": {"family": "arm", "bits": 64},
           "memory_mb": "lots", "model": "Compute Module 4"}),
    "i": ("gateway", {"site": "muc-2"},
          {"os": {"codename": "trixie"}, "kernel": "6.12.0-1-arm64", "memory_mb": 1024}),
}
FACT_CASES = [
    {"inventory.os.pretty_name": "Debian GNU/Linux 12"},
    {"inventory.os.pretty_name": {"$prefix": "Debian"}},
    {"inventory.os.id": {"$exists": False}},
    {"inventory.os.id": {"$ne": "debian"}},
    {"inventory.os.version_id": {"$nin": ["11"]}, "site": "berlin"},
    {"inventory.os.version_id": {"$gte": "12"}},
    {"inventory.kernel": {"$contains": "lts"}},
    {"inventory.kernel": {"$contains": "arm64"}},
    {"inventory.kernel": {"$prefix": "6.1"}},
    {"inventory.kernel": ["6.1"]},
    {"inventory.arch.family": "arm"},
    {"inventory.arch.bits": {"$gt": 32}},
    {"inventory.arch": {"$exists": True}},
    {"inventory.agent_version": 7},
    {"system.agent_version": "7"},
    {"system.agent_version": {"$prefix": "7."}},
    {"system.agent_version": {"$exists": True}},
    {"inventory.python_version": {"$exists": True}},
    {"inventory.python_version": None},
    {"inventory.python_version": {"$ne": "3.11.2"}},
    {"inventory.memory_mb": {"$gte": 2048}},
    {"inventory.memory_mb": {"$lt": "m"}},
    {"inventory.memory_mb": {"$in": [3793, 1024]}},
    {"inventory.model": {"$contains": "Pi"}, "device_type": "raspberry-pi",
     "environment": "production"},
    {"$or": [{"inventory.model": "Compute Module 4"}, {"rack": 7}]},
    {"$not": {"inventory.os.version_id": {"$in": ["12", 12]}, "system.type": "raspberry-pi"}},
    {"device_type": "raspberry-pi", "site": "berlin",
     "inventory.os.version_id": {"$in": ["12", "13"]},
     "inventory.model": "Raspberry Pi 4 Model B"},
]
# Named but not summarised: counted on the devices.
NOT_SUMMARISED = [
    {"inventory.os": {"$eq": {"id": "debian"}}},
    {"inventory.os.codename": "bookworm"},
    {"inventory.disk_free_mb": {"$gte": 500}, "inventory.model": "Raspberry Pi 4 Model B"},
    {"inventory.hostname": {"$exists": False}},
    {"system.name": "dev-a", "inventory.kernel": {"$exists": True}},
    {"system.last_seen_at": {"$exists": False}, "inventory.arch": "aarch64"},
]


def insert_devices(devices: dict) -> dict:
    names = {}
    with db.pool().connection() as conn:
        for name, (device_type, attributes, inventory) in devices.items():
            row = conn.execute(
                "INSERT INTO devices (uuid, device_name, device_type, attributes, inventory,"
                " token_hash) VALUES (gen_random_uuid(), %s, %s, %s, %s,"
                " uuid_send(gen_random_uuid())) RETURNING uuid",
                (f"dev-{name}", device_type, json.dumps(attributes), json.dumps(inventory)),
            ).fetchone()
            names[row["uuid"]] = name
    return names


def counted(query: str, target_filter: dict) -> int:
    predicate = compile_filter(parse_target_filter(target_filter), "t")
    with db.connect() as c:
        return c.row_filtered(query, {"target_filter": predicate})["n"]


def drift(conn: psycopg.Connection) -> list:
    """Devices whose signature row is missing, wrong or doubled, signature rows that do not
    hold what their key says, and signature rows of devices that are gone."""
    return conn.execute(
        "SELECT 'device' AS what, d.uuid::text AS key FROM devices d"
        " WHERE (SELECT array_agg(f.signature) FROM device_fact_signatures f"
        "         WHERE f.device_uuid = d.uuid)"
        "       IS DISTINCT FROM ARRAY[fact_signature(d.device_type, d.attributes,"
        "                                             fact_summary(d.inventory))]"
        " UNION ALL"
        " SELECT 'signature', s.signature::text FROM fact_signatures s"
        " WHERE s.signature <> fact_signature(s.device_type, s.attributes, s.inventory)"
        " UNION ALL"
        " SELECT 'dangling', f.device_uuid::text FROM device_fact_signatures f"
        " WHERE NOT EXISTS (SELECT 1 FROM devices d WHERE d.uuid = f.device_uuid)"
        "    OR NOT EXISTS (SELECT 1 FROM fact_signatures s WHERE s.signature = f.signature)"
    ).fetchall()


def assert_no_drift() -> None:
    with db.pool().connection() as conn:
        assert drift(conn) == []


def test_the_summarised_facts_are_the_documented_list(app):
    with db.connect() as c:
        facts = summarised_facts(c)
    assert facts == (
        ("os", "id"), ("os", "version_id"), ("os", "pretty_name"), ("kernel",), ("arch",),
        ("agent_version",), ("python_version",), ("model",), ("memory_mb",))
    with db.pool().connection() as conn:
        everything = {"os": {"id": "a", "version_id": "1", "pretty_name": "A 1", "x": 1},
                      "kernel": "k", "arch": "a", "agent_version": "1", "python_version": "3",
                      "model": "m", "memory_mb": 1, "hostname": "h", "disk_free_mb": 2,
                      "ip_addresses": ["10.0.0.1"]}
        summary = conn.execute("SELECT fact_summary(%s::jsonb) AS s",
                               (json.dumps(everything),)).fetchone()["s"]
    paths = {(k, sub) for k, v in summary.items() if isinstance(v, dict) for sub in v}
    paths |= {(k,) for k, v in summary.items() if not isinstance(v, dict)}
    assert paths == set(facts)


def test_fact_signatures_count_what_the_devices_count(fleet):  # noqa: F811
    insert_devices(MORE_DEVICES)
    with db.connect() as c:
        facts = summarised_facts(c)
    compared = 0
    for target_filter in [case[0] for case in CASES if case[0]] + FACT_CASES:
        if not counts_from_fact_signatures(parse_target_filter(target_filter), facts):
            assert target_filter not in FACT_CASES
            continue
        on_devices = counted("count_matching_devices", target_filter)
        assert counted("count_matching_fact_signatures", target_filter) == on_devices, \
            target_filter
        assert count_target_devices(parse_target("group", None, target_filter)) == on_devices
        compared += 1
    assert compared > len(FACT_CASES) + 20


def test_the_cases_reach_every_counting_path(app):
    with db.connect() as c:
        facts = summarised_facts(c)
    trees = [parse_target_filter(f) for f in FACT_CASES]
    assert all(counts_from_fact_signatures(t, facts) for t in trees)
    assert not any(counts_from_signatures(t) for t in trees)
    for target_filter in NOT_SUMMARISED:
        assert not counts_from_fact_signatures(parse_target_filter(target_filter), facts)
    # At least one case of each filter operator runs through the signatures.
    named = json.dumps(FACT_CASES)
    for operator in ("$ne", "$nin", "$in", "$gt", "$gte", "$lt", "$exists", "$prefix",
                     "$contains", "$or", "$not"):
        assert operator in named, operator


def test_filters_on_other_facts_count_on_the_devices(fleet):  # noqa: F811
    insert_devices(MORE_DEVICES)
    for target_filter in NOT_SUMMARISED:
        expected = counted("count_matching_devices", target_filter)
        assert count_target_devices(parse_target("group", None, target_filter)) == expected


def test_signatures_follow_registration_reports_edits_and_deletion(app):
    names = insert_devices(MORE_DEVICES)
    bulk_register_devices(20, "raspberry-pi", {"site": "berlin"})
    registered = register_device("plain-1", "gateway", {"site": "muc-2"}).answer[0]
    assert_no_drift()
    by_name = {name: device for device, name in names.items()}
    now = datetime.now(UTC)
    moved = {"inventory.os.version_id": "13"}
    assert count_target_devices(parse_target("group", None, moved)) == 0

    # merge: a summarised fact changes, then only an unsummarised one, then a null removes one
    report_inventory(by_name["f"], {"os": {"version_id": "13"}}, "merge", now)
    assert_no_drift()
    assert count_target_devices(parse_target("group", None, moved)) == 1
    report_inventory(by_name["f"], {"disk_free_mb": 11}, "merge", now)
    report_inventory(by_name["f"], {"kernel": None}, "merge", now)
    assert_no_drift()
    assert count_target_devices(parse_target(
        "group", None, {"inventory.kernel": {"$exists": False}, "environment": "production"})) == 1
    # replace: keys missing from the report are gone
    report_inventory(by_name["g"], {"os": {"id": "alpine"}, "disk_free_mb": 5}, "replace", now)
    assert_no_drift()
    assert count_target_devices(parse_target(
        "group", None, {"inventory.model": {"$exists": False}})) == 23  # g, i, bulk, plain
    # a device reporting for the first time
    report_inventory(registered["uuid"], {"os": {"id": "debian", "version_id": "13"},
                                         "model": "Raspberry Pi 5"}, "merge", now)
    assert count_target_devices(parse_target("group", None, moved)) == 2
    # the operator's edits: attributes, then the type
    update_device(by_name["h"], {"attributes": {"site": "berlin", "rack": 7}}, "admin")
    assert_no_drift()
    assert count_target_devices(parse_target(
        "group", None, {"rack": 7, "inventory.model": "Compute Module 4"})) == 1
    update_device(by_name["h"], {"device_type": "router"}, "admin")
    assert_no_drift()
    assert count_target_devices(parse_target(
        "group", None, {"device_type": "router", "inventory.memory_mb": "lots"})) == 1
    # direct SQL: many devices in one statement, a uuid changed
    with db.pool().connection() as conn:
        conn.execute("UPDATE devices SET inventory = inventory || '{\"arch\": \"x86_64\"}'"
                     " WHERE device_type = 'raspberry-pi'")
        conn.execute("UPDATE devices SET uuid = gen_random_uuid() WHERE uuid = %s",
                     (by_name["i"],))
        conn.execute("UPDATE devices SET uuid = gen_random_uuid(), inventory = '{}'"
                     " WHERE uuid = %s", (by_name["h"],))
    assert_no_drift()
    assert count_target_devices(parse_target(
        "group", None, {"inventory.arch": "x86_64", "site": "berlin"})) == 22  # f, g, bulk
    assert count_target_devices(parse_target(
        "group", None, {"device_type": "router", "inventory.memory_mb": "lots"})) == 0
    # deletion, one device and then all
    delete_device(by_name["f"], "admin")
    assert_no_drift()
    assert count_target_devices(parse_target("group", None, moved)) == 1
    with db.pool().connection() as conn:
        conn.execute("DELETE FROM devices WHERE device_type = 'raspberry-pi'")
        assert_no_drift()
        conn.execute("DELETE FROM devices WHERE device_type = 'gateway'")
        assert_no_drift()
        conn.execute("TRUNCATE devices CASCADE")
        assert conn.execute("SELECT count(*) AS n FROM device_fact_signatures").fetchone()["n"] == 0


def test_a_sighting_does_not_write_the_signatures(app):
    names = insert_devices(MORE_DEVICES)
    device = next(iter(names))

    def signature_row_version() -> tuple:
        with db.pool().connection() as conn:
            return tuple(conn.execute(
                "SELECT ctid::text, xmin::text FROM device_fact_signatures"
                " WHERE device_uuid = %s", (device,)).fetchone().values())

    before = signature_row_version()
    sightings = Sightings()
    sightings.note(device)
    assert sightings.flush() == 1
    # An inventory report whose summarised facts are unchanged writes nothing there either.
    report_inventory(device, {"disk_free_mb": 12345, "hostname": "new"}, "merge",
                     datetime.now(UTC))
    assert signature_row_version() == before
    report_inventory(device, {"kernel": "6.12"}, "merge", datetime.now(UTC))
    assert signature_row_version() != before


def test_a_filter_on_facts_is_counted_by_an_index_only_scan(app):
    bulk_register_devices(2000, "raspberry-pi", {"site": "berlin"})
    with db.pool().connection() as conn:
        conn.execute("UPDATE devices SET inventory = jsonb_build_object("
                     "'os', jsonb_build_object('id', 'debian',"
                     "                         'version_id', (11 + (random() * 2)::int)::text),"
                     "'model', 'Raspberry Pi 4 Model B', 'disk_free_mb', (random() * 1000)::int)")
        conn.execute("VACUUM ANALYZE device_fact_signatures")
        conn.execute("VACUUM ANALYZE fact_signatures")
    predicate = compile_filter(parse_target_filter(
        {"site": "berlin", "inventory.os.version_id": {"$in": ["12", "13"]}}), "t")
    with db.pool().connection() as conn, conn.transaction():
        conn.execute("SET LOCAL enable_seqscan = off")
        conn.execute("SET LOCAL enable_bitmapscan = off")
        statement = db._fill_slots("count_matching_fact_signatures",
                                   {"target_filter": predicate}, {})
        plan = "\n".join(row["QUERY PLAN"] for row in conn.execute(
            b"EXPLAIN (ANALYZE, BUFFERS) " + statement[0].as_bytes(conn),
            statement[1]).fetchall())
    assert "Index Only Scan using device_fact_signatures_signature_idx" in plan
    assert "Heap Fetches: 0" in plan


def test_the_migration_places_the_devices_registered_before_it(app):
    fact_signatures = next(m.version for m in available_migrations()
                           if m.name == "fact_signatures")
    name = f"djtest_facts_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = psycopg.conninfo.make_conninfo(PG_ADMIN_URL, dbname=name)
    try:
        migrate(url, up_to=fact_signatures - 1)
        with psycopg.connect(url, autocommit=True) as conn:
            for i, (device_type, attributes, inventory) in enumerate(MORE_DEVICES.values()):
                for copy in range(3):
                    conn.execute(
                        "INSERT INTO devices (uuid, device_name, device_type, attributes,"
                        " inventory, token_hash) VALUES (gen_random_uuid(), %s, %s, %s, %s,"
                        " uuid_send(gen_random_uuid()))",
                        (f"dev-{i}-{copy}", device_type, json.dumps(attributes),
                         json.dumps(inventory)))
        migrate(url)
        with psycopg.connect(url, autocommit=True, row_factory=psycopg.rows.dict_row) as conn:
            assert drift(conn) == []
            assert conn.execute("SELECT count(*) AS n FROM device_fact_signatures"
                                ).fetchone()["n"] == 3 * len(MORE_DEVICES)
            assert conn.execute("SELECT count(*) AS n FROM fact_signatures"
                                ).fetchone()["n"] == len(MORE_DEVICES)
    finally:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
