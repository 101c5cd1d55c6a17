"""The filter language's parser: what it accepts, and the part it names when it refuses."""

from __future__ import annotations

import json
from datetime import UTC, timedelta

import pytest

from schemas.filters import (
    ATTRIBUTES,
    INVENTORY,
    MAX_CONDITIONS,
    MAX_DEPTH,
    MAX_IN_VALUES,
    SYSTEM,
    AllOf,
    AnyOf,
    Condition,
    Field,
    FilterError,
    NoneOf,
    RelativeTime,
    fields_of,
    parse_duration,
    parse_filter,
)

ISSUE_EXAMPLE = {
    "device_type": "raspberry-pi",
    "environment": "production",
    "inventory.os.version_id": {"$in": ["11", "12"]},
    "inventory.disk_free_mb": {"$gte": 500},
    "system.last_seen_at": {"$gte": "-PT1H"},
    "tags": {"$contains": "canary"},
    "$or": [{"site": "berlin"}, {"site": {"$prefix": "muc-"}}],
    "$not": {"role": "canary"},
}


def refused_at(value) -> str:
    with pytest.raises(FilterError) as caught:
        parse_filter(value)
    return caught.value.where


def test_the_full_example_parses_into_its_parts():
    tree = parse_filter(ISSUE_EXAMPLE)
    names = [f.name for f in fields_of(tree)]
    assert names == ["system.type", "environment", "inventory.os.version_id",
                     "inventory.disk_free_mb", "system.last_seen_at", "tags", "site", "site",
                     "role"]
    kinds = [type(child) for child in tree.children]
    assert kinds == [Condition] * 6 + [AnyOf, NoneOf]
    assert tree.children[2] == Condition(Field(INVENTORY, ("os", "version_id")), "$in",
                                         ("11", "12"))
    assert tree.children[4].value == RelativeTime(timedelta(hours=-1))


def test_todays_filters_keep_their_meaning():
    tree = parse_filter({"device_type": "raspberry-pi", "environment": "production"})
    assert tree == AllOf((Condition(Field(SYSTEM, ("type",)), "$eq", "raspberry-pi"),
                          Condition(Field(ATTRIBUTES, ("environment",)), "$eq", "production")))
    # A plain object or list is containment, as before: $eq of the whole value.
    nested = parse_filter({"location": {"site": "berlin"}, "tags": ["edge"]})
    assert [c.value for c in nested.children] == [{"site": "berlin"}, ["edge"]]
    assert parse_filter({}) == AllOf(())


def test_dotted_keys_are_paths_and_quotes_are_just_characters():
    tree = parse_filter({"hw.rev": 2, "quo'te\"key": 1, "inventory.a.b.c": True})
    assert [c.field for c in tree.children] == [
        Field(ATTRIBUTES, ("hw", "rev")), Field(ATTRIBUTES, ("quo'te\"key",)),
        Field(INVENTORY, ("a", "b", "c"))]


@pytest.mark.parametrize("operator, operand", [
    ("$eq", "x"), ("$eq", 1), ("$eq", 1.5), ("$eq", True), ("$eq", None), ("$eq", [1]),
    ("$eq", {"a": 1}), ("$ne", "x"), ("$ne", None), ("$gt", 1), ("$gte", "b"), ("$lt", -1.5),
    ("$lte", "z"), ("$in", ["a", 1, None]), ("$nin", [True]), ("$exists", True),
    ("$exists", False), ("$prefix", "muc-"), ("$contains", "canary"), ("$contains", 3),
])
def test_every_operator_takes_its_operand(operator, operand):
    tree = parse_filter({"key": {operator: operand}})
    expected = tuple(operand) if operator in ("$in", "$nin") else operand
    assert tree.children == (Condition(Field(ATTRIBUTES, ("key",)), operator, expected),)


def test_logical_operators_nest():
    tree = parse_filter({"$and": [{"a": 1}, {"$or": [{"b": 2}, {"$not": {"c": 3}}]}]})
    (outer,) = tree.children
    assert isinstance(outer, AllOf)
    assert isinstance(outer.children[1].children[0], AnyOf)


@pytest.mark.parametrize("value, where", [
    ([], "filter"),
    ("device_type=pi", "filter"),
    ({"$where": "1"}, "filter.$where"),
    ({"a": {"$regex": "x"}}, "filter.a.$regex"),
    ({"a": {"$gt": True}}, "filter.a.$gt"),
    ({"a": {"$gt": None}}, "filter.a.$gt"),
    ({"a": {"$lte": [1]}}, "filter.a.$lte"),
    ({"a": {"$gte": {"b": 1}}}, "filter.a.$gte"),
    ({"a": {"$in": []}}, "filter.a.$in"),
    ({"a": {"$in": "x"}}, "filter.a.$in"),
    ({"a": {"$nin": {"x": 1}}}, "filter.a.$nin"),
    ({"a": {"$exists": "yes"}}, "filter.a.$exists"),
    ({"a": {"$exists": 1}}, "filter.a.$exists"),
    ({"a": {"$prefix": 5}}, "filter.a.$prefix"),
    ({"a": {"$eq": 1, "b": 2}}, "filter.a"),
    ({"$or": []}, "filter.$or"),
    ({"$or": {"a": 1}}, "filter.$or"),
    ({"$or": [{"a": 1}, 2]}, "filter.$or[1]"),
    ({"$and": [{"a": {"$bad": 1}}]}, "filter.$and[0].a.$bad"),
    ({"$not": [{"a": 1}]}, "filter.$not"),
    ({"a..b": 1}, "filter.a..b"),
    ({".a": 1}, "filter..a"),
    ({"a.": 1}, "filter.a."),
    ({"inventory.": 1}, "filter.inventory."),
    ({"system.secret": 1}, "filter.system.secret"),
    ({"system.name.x": 1}, "filter.system.name.x"),
    ({"system.name": 5}, "filter.system.name"),
    ({"device_type": 5}, "filter.device_type"),
    ({"system.type": {"$in": ["a", 1]}}, "filter.system.type.$in[1]"),
    ({"system.last_seen_at": {"$gte": "yesterday"}}, "filter.system.last_seen_at.$gte"),
    ({"system.last_seen_at": {"$gte": 5}}, "filter.system.last_seen_at.$gte"),
    ({"system.created_at": {"$prefix": "2026"}}, "filter.system.created_at.$prefix"),
    ({"a": float("nan")}, "filter.a"),
    ({"a": float("inf")}, "filter.a"),
    ({"a": "x" * 2000}, "filter.a"),
    ({"a": "nul\x00"}, "filter.a"),
    ({"k" * 300: 1}, "filter." + "k" * 300),
    ({".".join(["k"] * 20): 1}, "filter." + ".".join(["k"] * 20)),
])
def test_a_malformed_filter_names_the_wrong_part(value, where):
    assert refused_at(value) == where


def test_deep_nesting_is_refused_before_it_costs_anything():
    deep: dict = {"a": 1}
    for _ in range(MAX_DEPTH + 5):
        deep = {"$not": deep}
    assert refused_at(deep).startswith("filter.$not.$not")
    ors: dict = {"a": 1}
    for _ in range(MAX_DEPTH + 5):
        ors = {"$or": [ors]}
    assert "Nested deeper" in _message(ors)
    value: object = 1
    for _ in range(MAX_DEPTH + 5):
        value = [value]
    assert refused_at({"a": value}) == "filter.a"
    # A filter just inside the limit is fine.
    shallow: dict = {"a": 1}
    for _ in range(MAX_DEPTH):
        shallow = {"$not": shallow}
    parse_filter(shallow)


def test_huge_filters_are_refused():
    parse_filter({"a": {"$in": list(range(MAX_IN_VALUES))}})
    assert refused_at({"a": {"$in": list(range(MAX_IN_VALUES + 1))}}) == "filter.a.$in"
    many = {f"k{i}": i for i in range(MAX_CONDITIONS + 1)}
    assert "More than" in _message(many)


def test_sql_and_jsonpath_fragments_are_plain_values():
    hostile = ["' OR 1=1 --", "$.a ? (@ > 1)", "'; DROP TABLE devices; --", "%", "_", "\\",
               '"}]', "{{target_filter}}", "%(limit)s"]
    for text in hostile:
        tree = parse_filter({"site": text, "inventory.x": {"$prefix": text, "$contains": text}})
        assert [c.value for c in tree.children] == [text, text, text]
    assert refused_at({"$.a ? (@ > 1)": 1}) == "filter.$.a ? (@ > 1)"


def test_relative_and_absolute_times():
    tree = parse_filter({"system.last_seen_at": {"$gte": "-P1DT2H30M", "$lt": "2026-01-31T00:00Z"},
                         "system.created_at": {"$in": ["2026-01-01T00:00:00+01:00"]}})
    since, before, created = (c.value for c in tree.children)
    assert since == RelativeTime(-timedelta(days=1, hours=2, minutes=30))
    assert before.tzinfo is not None and before.hour == 0
    assert created[0].utcoffset() == timedelta(hours=1)
    naive = parse_filter({"system.created_at": {"$gte": "2026-01-01T00:00:00"}})
    assert naive.children[0].value.tzinfo == UTC


@pytest.mark.parametrize("text, expected", [
    ("-PT1H", -timedelta(hours=1)), ("PT15M", timedelta(minutes=15)), ("P1D", timedelta(days=1)),
    ("P2W", timedelta(weeks=2)), ("-PT0.5S", -timedelta(seconds=0.5)),
    ("P1DT1H1M1S", timedelta(days=1, hours=1, minutes=1, seconds=1)),
    ("P", None), ("PT", None), ("-P", None), ("P1DT", None), ("1H", None), ("PT1D", None),
    ("P1H", None), ("", None),
])
def test_iso_durations(text, expected):
    assert parse_duration(text) == expected


def test_filters_from_json_text_parse_alike():
    assert parse_filter(json.loads(json.dumps(ISSUE_EXAMPLE))) == parse_filter(ISSUE_EXAMPLE)


def _message(value) -> str:
    with pytest.raises(FilterError) as caught:
        parse_filter(value)
    return caught.value.message
