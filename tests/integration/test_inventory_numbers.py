"""Inventory numbers: a range of one numeric inventory fact is counted from the maintained
``device_inventory_numbers``, with the very count the devices give, by an index-only scan; the
numbers follow every way an inventory changes (registration, reports in both modes, direct SQL,
a changed uuid, deletion), the devices registered before the migration included."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime

import psycopg
import pytest
from job_rows import bulk_register_devices
from suite_constants import PG_ADMIN_URL
from test_fact_signatures import counted, insert_devices

from dispatcher import db
from dispatcher.fleet.devices import delete_device, list_devices, register_device
from dispatcher.fleet.filters import compile_filter, number_range, parse_target_filter
from dispatcher.fleet.inventory import report_inventory
from dispatcher.jobs.targeting import count_target_devices, parse_target
from dispatcher.migrate import available_migrations, migrate

# Numbers written every way JSON writes them, and values of a numeric fact that are not
# numbers: strings of digits, booleans, lists, objects, null.
DEVICES = {
    "int": ("raspberry-pi", {"site": "berlin"},
            {"disk_free_mb": 500, "memory_mb": 3793, "os": {"id": "debian", "build": 12}}),
    "float": ("raspberry-pi", {"site": "berlin"},
              {"disk_free_mb": 499.5, "memory_mb": 3793.0, "temperature": -12.25}),
    "written-twice": ("raspberry-pi", {}, {"disk_free_mb": 500.0, "load": 0.1}),
    "huge": ("gateway", {}, {"disk_free_mb": 10 ** 30, "load": 1e-7, "temperature": -1e20}),
    "zero": ("gateway", {}, {"disk_free_mb": 0, "temperature": 0.0}),
    "string": ("gateway", {}, {"disk_free_mb": "900", "os": {"build": "12"}}),
    "boolean": ("gateway", {}, {"disk_free_mb": True, "load": False}),
    "list": ("gateway", {}, {"disk_free_mb": [900], "slots": [5, 7]}),
    "object": ("gateway", {}, {"disk_free_mb": {"value": 900}, "slots": {"0": 5, "1": 70}}),
    "null": ("gateway", {}, {"disk_free_mb": None}),
    "empty": ("gateway", {}, {}),
}
RANGES = [
    {"inventory.disk_free_mb": {"$gte": 500}},
    {"inventory.disk_free_mb": {"$gt": 500}},
    {"inventory.disk_free_mb": {"$lt": 500}},
    {"inventory.disk_free_mb": {"$lte": 499.5}},
    {"inventory.disk_free_mb": {"$gte": 0, "$lt": 500}},
    {"inventory.disk_free_mb": {"$gt": 10 ** 29}},
    {"inventory.disk_free_mb": {"$gte": -1}},
    {"inventory.disk_free_mb": {"$gte": 100}, "$and": [{"inventory.disk_free_mb": {"$lte": 500}}]},
    {"inventory.disk_free_mb.value": {"$gte": 900}},
    {"inventory.memory_mb": {"$gte": 3793}},
    {"inventory.temperature": {"$lt": 0}},
    {"inventory.temperature": {"$lt": -1e19}},
    {"inventory.load": {"$gt": 0}},
    {"inventory.load": {"$lte": 0.1}},
    {"inventory.os.build": {"$gte": 12}},
    {"inventory.slots.x": {"$gte": 0}},
    {"inventory.missing": {"$gte": 0}},
]
# Counted on the devices: not one range of one numeric fact.
ON_DEVICES = [
    {"inventory.disk_free_mb": {"$gte": "500"}},
    {"inventory.disk_free_mb": 500},
    {"inventory.disk_free_mb": {"$gte": 100}, "inventory.memory_mb": {"$gte": 100}},
    {"inventory.disk_free_mb": {"$gte": 100}, "site": "berlin"},
    {"$or": [{"inventory.disk_free_mb": {"$gte": 100}}]},
    {"$not": {"inventory.disk_free_mb": {"$gte": 100}}},
    {"inventory.disk_free_mb": {"$ne": 100}},
    {"disk_free_mb": {"$gte": 100}},
    {"system.name": {"$gte": "dev-a"}},
    # "0" after the first key could be a list index, as #> reads it.
    {"inventory.slots.0": {"$gte": 5}},
    {"inventory.slots.1": {"$gte": 5}},
]


@pytest.fixture
def numbers_fleet(app):
    return insert_devices(DEVICES)


def drift(conn: psycopg.Connection) -> list:
    """(device, path, value) rows the table holds that the inventories do not, and the other
    way round."""
    return conn.execute(
        "WITH held AS (SELECT n.device_uuid, p.path, n.value FROM device_inventory_numbers n"
        "              LEFT JOIN inventory_number_paths p ON p.id = n.path_id),"
        "     reported AS (SELECT d.uuid, l.path, l.value"
        "                    FROM devices d, inventory_number_leaves(d.inventory) l)"
        " (TABLE held EXCEPT TABLE reported) UNION ALL (TABLE reported EXCEPT TABLE held)"
    ).fetchall()


def assert_no_drift() -> None:
    with db.pool().connection() as conn:
        assert drift(conn) == []


def test_a_numeric_range_is_counted_from_the_numbers_as_the_devices_count_it(numbers_fleet):
    expected_matches = 0
    for target_filter in RANGES:
        assert number_range(parse_target_filter(target_filter)) is not None, target_filter
        on_devices = counted("count_matching_devices", target_filter)
        assert count_target_devices(parse_target("group", None, target_filter)) == on_devices, \
            target_filter
        expected_matches += on_devices
    # The cases do match devices (a count of nothing everywhere would agree as well).
    on_devices = "count_matching_devices"
    # int, written-twice, huge
    assert counted(on_devices, {"inventory.disk_free_mb": {"$gte": 500}}) == 3
    assert counted(on_devices, {"inventory.disk_free_mb.value": {"$gte": 900}}) == 1
    assert expected_matches > 20


def test_a_search_for_a_range_pages_and_counts_what_the_devices_hold(numbers_fleet):
    for target_filter in RANGES:
        tree = parse_target_filter(target_filter)
        with db.connect() as c:
            expected = [row["uuid"] for row in c.all_filtered(
                "list_devices", {"device_filter": compile_filter(tree, "device")},
                limit=100, offset=0)]
        pages = [list_devices(target_filter, limit=2, offset=offset) for offset in (0, 2, 4)]
        assert [d["uuid"] for page in pages for d in page["devices"]] == expected[:6], \
            target_filter
        assert {page["total"] for page in pages} == {len(expected)}, target_filter


def test_a_search_for_a_range_finds_its_devices_by_the_index(app, monkeypatch):
    bulk_register_devices(3000, "raspberry-pi", {"site": "berlin"})
    with db.pool().connection() as conn:
        conn.execute("UPDATE devices SET inventory = jsonb_build_object("
                     "'disk_free_mb', (random() * 10000)::int)")
        conn.execute("VACUUM ANALYZE devices")
        conn.execute("VACUUM ANALYZE device_inventory_numbers")
    pages = []
    all_filtered = db.Connector.all_filtered

    def recorded(self, query, /, slots, **params):
        pages.append((query, slots, params))
        return all_filtered(self, query, slots, **params)

    monkeypatch.setattr(db.Connector, "all_filtered", recorded)
    list_devices({"inventory.disk_free_mb": {"$lt": 5}}, limit=50, offset=0)
    [(query, slots, params)] = [page for page in pages if page[0] == "list_devices"]
    with db.pool().connection() as conn:
        statement = db._fill_slots(query, slots, params)
        plan = "\n".join(row["QUERY PLAN"] for row in conn.execute(
            b"EXPLAIN " + statement[0].as_bytes(conn), statement[1]).fetchall())
    assert "device_inventory_numbers_range_idx" in plan, plan


def test_other_filters_are_counted_on_the_devices(numbers_fleet):
    for target_filter in ON_DEVICES:
        assert number_range(parse_target_filter(target_filter)) is None, target_filter
        assert count_target_devices(parse_target("group", None, target_filter)) == \
            counted("count_matching_devices", target_filter)
    # A list index: the devices' count reads into the list, which the numbers do not hold.
    # [5, 7] and {"1": 70}
    assert counted("count_matching_devices", {"inventory.slots.1": {"$gte": 5}}) == 2


def test_the_leaves_are_the_numbers_reached_through_objects(app):
    with db.pool().connection() as conn:
        leaves = conn.execute(
            "SELECT array_to_string(path, '/') AS path, value::text AS value"
            " FROM inventory_number_leaves(%s::jsonb) ORDER BY 1",
            (json.dumps({"a": 1, "b": {"c": 2.5, "d": {"e": -3}, "f": [4]}, "g": "5",
                         "h": True, "i": None, "j.k": 6, "l": [{"m": 7}]}),)).fetchall()
    assert [(r["path"], r["value"]) for r in leaves] == [
        ("a", "1"), ("b/c", "2.5"), ("b/d/e", "-3"), ("j.k", "6")]


def test_numbers_follow_registration_reports_edits_and_deletion(numbers_fleet):
    by_name = {name: device for device, name in numbers_fleet.items()}
    bulk_register_devices(20, "raspberry-pi", {"site": "berlin"})
    registered = register_device("plain-1", "gateway", {"site": "muc-2"}).answer[0]
    assert_no_drift()
    now = datetime.now(UTC)
    low = {"inventory.disk_free_mb": {"$lt": 100}}
    assert count_target_devices(parse_target("group", None, low)) == 1  # zero

    # merge: a number changes, a string becomes a number, a null removes one, a nested one
    report_inventory(by_name["int"], {"disk_free_mb": 50}, "merge", now)
    report_inventory(by_name["string"], {"disk_free_mb": 60, "os": {"build": 13}}, "merge", now)
    report_inventory(by_name["zero"], {"disk_free_mb": None}, "merge", now)
    assert_no_drift()
    assert count_target_devices(parse_target("group", None, low)) == 2  # int, string
    assert count_target_devices(parse_target(
        "group", None, {"inventory.os.build": {"$gte": 13}})) == 1
    # the same value written another way, and an unchanged number beside a changed string
    report_inventory(by_name["int"], {"disk_free_mb": 50.0, "hostname": "renamed"}, "merge", now)
    assert_no_drift()
    # replace: numbers missing from the report are gone, a number becomes a string
    report_inventory(by_name["float"], {"memory_mb": "lots"}, "replace", now)
    assert_no_drift()
    assert count_target_devices(parse_target(
        "group", None, {"inventory.temperature": {"$lt": 0}})) == 1  # huge
    # a device reporting for the first time
    report_inventory(registered["uuid"], {"disk_free_mb": 7}, "merge", now)
    assert count_target_devices(parse_target("group", None, low)) == 3
    # direct SQL: many devices in one statement, a uuid changed (with and without the inventory)
    with db.pool().connection() as conn:
        conn.execute("UPDATE devices SET inventory = inventory || '{\"disk_free_mb\": 1}'"
                     " WHERE device_type = 'raspberry-pi'")
        conn.execute("UPDATE devices SET uuid = gen_random_uuid() WHERE uuid = %s",
                     (by_name["huge"],))
        conn.execute("UPDATE devices SET uuid = gen_random_uuid(),"
                     " inventory = '{\"disk_free_mb\": 2}' WHERE uuid = %s", (by_name["list"],))
    assert_no_drift()
    assert count_target_devices(parse_target("group", None, low)) == 26  # 23 pis, +string,
    #                                                                        list, registered
    # deletion, one device and then all
    delete_device(by_name["string"], "admin")
    assert_no_drift()
    assert count_target_devices(parse_target("group", None, low)) == 25
    with db.pool().connection() as conn:
        conn.execute("DELETE FROM devices WHERE device_type = 'raspberry-pi'")
        assert_no_drift()
        conn.execute("TRUNCATE devices CASCADE")
        assert conn.execute("SELECT count(*) AS n FROM device_inventory_numbers"
                            ).fetchone()["n"] == 0


def test_a_report_that_changes_no_number_writes_none(numbers_fleet):
    device = next(d for d, name in numbers_fleet.items() if name == "int")

    def number_rows() -> list:
        with db.pool().connection() as conn:
            return [tuple(row.values()) for row in conn.execute(
                "SELECT ctid::text, xmin::text FROM device_inventory_numbers"
                " WHERE device_uuid = %s ORDER BY path_id", (device,)).fetchall()]

    before = number_rows()
    assert len(before) == 3
    report_inventory(device, {"hostname": "new", "memory_mb": 3793.0}, "merge", datetime.now(UTC))
    assert number_rows() == before
    report_inventory(device, {"disk_free_mb": 1}, "merge", datetime.now(UTC))
    after = number_rows()
    assert len(after) == 3 and len(set(after) & set(before)) == 2


def test_a_numeric_range_is_counted_by_an_index_only_scan(app):
    bulk_register_devices(2000, "raspberry-pi", {"site": "berlin"})
    with db.pool().connection() as conn:
        conn.execute("UPDATE devices SET inventory = jsonb_build_object("
                     "'disk_free_mb', (random() * 1000)::int, 'memory_mb', 3793)")
        conn.execute("VACUUM ANALYZE device_inventory_numbers")
    predicate = number_range(parse_target_filter({"inventory.disk_free_mb": {"$gte": 500}}))
    assert predicate is not None
    with db.pool().connection() as conn, conn.transaction():
        conn.execute(db.QUERIES["prefer_index_scans"])
        statement = db._fill_slots("count_matching_numbers", {"target_filter": predicate}, {})
        plan = "\n".join(row["QUERY PLAN"] for row in conn.execute(
            b"EXPLAIN (ANALYZE, BUFFERS) " + statement[0].as_bytes(conn),
            statement[1]).fetchall())
    assert "Index Only Scan using device_inventory_numbers_range_idx" in plan
    assert "Heap Fetches: 0" in plan


def test_the_migration_holds_the_numbers_of_the_devices_registered_before_it(app):
    numbers = next(m.version for m in available_migrations() if m.name == "inventory_numbers")
    name = f"djtest_numbers_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = psycopg.conninfo.make_conninfo(PG_ADMIN_URL, dbname=name)
    try:
        migrate(url, up_to=numbers - 1)
        with psycopg.connect(url, autocommit=True) as conn:
            for device_name, (device_type, attributes, inventory) in DEVICES.items():
                conn.execute(
                    "INSERT INTO devices (uuid, device_name, device_type, attributes,"
                    " inventory, token_hash) VALUES (gen_random_uuid(), %s, %s, %s, %s,"
                    " uuid_send(gen_random_uuid()))",
                    (device_name, device_type, json.dumps(attributes), json.dumps(inventory)))
        migrate(url)
        with psycopg.connect(url, autocommit=True, row_factory=psycopg.rows.dict_row) as conn:
            assert drift(conn) == []
            assert conn.execute("SELECT count(*) AS n FROM device_inventory_numbers"
                                ).fetchone()["n"] == 16
    finally:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def sequential_scans(c: db.Connector) -> str:
    return c.conn.execute("SELECT current_setting('enable_seqscan') AS s").fetchone()["s"]


def test_counting_a_range_leaves_the_transaction_s_settings_as_they_were(numbers_fleet):
    target = parse_target("group", None, {"inventory.disk_free_mb": {"$gte": 500}})
    with db.transaction() as c:
        assert count_target_devices(target, c) == 3
        assert sequential_scans(c) == "on"
        c.execute("restore_sequential_scans", setting="off")
        assert count_target_devices(target, c) == 3
        assert sequential_scans(c) == "off"
