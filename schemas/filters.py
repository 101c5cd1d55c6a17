"""The filter language: which devices a target, a group, a stage or a search means.

A filter is a JSON object. Each key is a field or a logical operator, and all of them must
hold::

    {"device_type": "raspberry-pi",                       bare key: an operator attribute
     "inventory.os.version_id": {"$in": ["11", "12"]},    inventory.: the device's own facts
     "inventory.disk_free_mb": {"$gte": 500},
     "system.last_seen_at": {"$gte": "-PT1H"},            system.: the server's columns
     "tags": {"$contains": "canary"},
     "$or": [{"site": "berlin"}, {"site": {"$prefix": "muc-"}}],
     "$not": {"role": "canary"}}

``device_type`` (bare) is the device's type, as it always was; dotted keys are paths into the
JSON. A plain value matches by JSON containment (``{"hw": {"rev": 2}}`` matches a device whose
``hw`` holds ``rev: 2``), so every filter written before the operators existed keeps its
meaning. Numbers compare as numbers and strings as strings; a value of another type simply does
not match. ``$ne`` and ``$nin`` match only devices that have the key (add
``{"$exists": false}`` under ``$or`` to include the others). Times on ``system.`` columns are
ISO 8601 instants or durations relative to now (``-PT1H``: an hour ago).

``parse_filter`` checks a filter and answers its syntax tree, or raises ``FilterError`` naming
the part that is wrong. The server compiles the tree to SQL
(``dispatcher.fleet.filters``); nothing here knows SQL. Runs on Python 3.9 (the agent imports
``schemas``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Union

ATTRIBUTES = "attributes"
INVENTORY = "inventory"
SYSTEM = "system"

DEVICE_TYPE_KEY = "device_type"
INVENTORY_PREFIX = "inventory."
SYSTEM_PREFIX = "system."

# The server's columns a filter may name, by the type their values compare as.
SYSTEM_TEXT_FIELDS = ("name", "type", "agent_version")
SYSTEM_TIME_FIELDS = ("last_seen_at", "created_at")
SYSTEM_FIELDS = SYSTEM_TEXT_FIELDS + SYSTEM_TIME_FIELDS

COMPARISONS = ("$eq", "$ne", "$gt", "$gte", "$lt", "$lte")
VALUE_OPERATORS = COMPARISONS + ("$in", "$nin", "$exists", "$prefix", "$contains")
LOGICAL_OPERATORS = ("$and", "$or", "$not")

# Bounds on what one filter may ask, so that a hostile filter is refused before it is planned.
MAX_DEPTH = 12
MAX_CONDITIONS = 500
MAX_IN_VALUES = 1000
MAX_KEY_LENGTH = 256
MAX_PATH_SEGMENTS = 16
MAX_STRING_LENGTH = 1024

_DURATION = re.compile(
    r"^(?P<sign>[-+]?)P(?:(?P<weeks>\d+)W)?(?:(?P<days>\d+)D)?"
    r"(?:T(?:(?P<hours>\d+)H)?(?:(?P<minutes>\d+)M)?(?:(?P<seconds>\d+(?:\.\d+)?)S)?)?$"
)


class FilterError(ValueError):
    """A malformed filter: ``where`` names the part (``filter.$or[1].site.$gt``)."""

    def __init__(self, where: str, message: str) -> None:
        super().__init__(f"{where}: {message}")
        self.where = where
        self.message = message


@dataclass(frozen=True)
class Field:
    """A value of a device: ``source`` is attributes, inventory or system; ``path`` the keys."""

    source: str
    path: tuple[str, ...]

    @property
    def name(self) -> str:
        prefix = "" if self.source == ATTRIBUTES else self.source + "."
        return prefix + ".".join(self.path)


@dataclass(frozen=True)
class RelativeTime:
    """A time relative to when the filter is evaluated (``-PT1H``)."""

    offset: timedelta


@dataclass(frozen=True)
class Condition:
    """``field`` satisfies ``operator`` with ``value`` (``$match``: JSON containment)."""

    field: Field
    operator: str
    value: Any


@dataclass(frozen=True)
class AllOf:
    children: tuple[Node, ...]


@dataclass(frozen=True)
class AnyOf:
    children: tuple[Node, ...]


@dataclass(frozen=True)
class NoneOf:
    child: Node


Node = Union[Condition, AllOf, AnyOf, NoneOf]  # noqa: UP007 - evaluated on Python 3.9


def parse_filter(value: Any, where: str = "filter") -> AllOf:
    """The syntax tree of a filter; FilterError naming the wrong part when it is malformed."""
    parser = _Parser()
    return parser.object(value, where, depth=0)


def is_valid_filter(value: Any) -> bool:
    try:
        parse_filter(value)
    except FilterError:
        return False
    return True


def fields_of(node: Node) -> list[Field]:
    """Every field a filter names, in order."""
    if isinstance(node, Condition):
        return [node.field]
    if isinstance(node, NoneOf):
        return fields_of(node.child)
    return [f for child in node.children for f in fields_of(child)]


def parse_duration(text: str) -> timedelta | None:
    """An ISO 8601 duration (``P1D``, ``-PT1H30M``, ``P2W``) as a timedelta, or None."""
    found = _DURATION.match(text)
    if not found or text.rstrip("-+") in ("P", "PT") or text.endswith("T"):
        return None
    parts = {k: float(v) for k, v in found.groupdict().items() if k != "sign" and v}
    if not parts:
        return None
    delta = timedelta(weeks=parts.get("weeks", 0), days=parts.get("days", 0),
                      hours=parts.get("hours", 0), minutes=parts.get("minutes", 0),
                      seconds=parts.get("seconds", 0))
    return -delta if found.group("sign") == "-" else delta


def parse_instant(text: str) -> datetime | None:
    """An ISO 8601 instant; one without a zone is UTC."""
    try:
        parsed = datetime.fromisoformat(text[:-1] + "+00:00" if text.endswith("Z") else text)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


class _Parser:
    def __init__(self) -> None:
        self.conditions = 0

    def object(self, value: Any, where: str, depth: int) -> AllOf:
        if depth > MAX_DEPTH:
            raise FilterError(where, f"Nested deeper than {MAX_DEPTH} levels.")
        if not isinstance(value, dict):
            raise FilterError(where, "Must be a JSON object.")
        children: list[Node] = []
        for key, item in value.items():
            here = f"{where}.{key}"
            if not isinstance(key, str):
                raise FilterError(where, "Keys must be strings.")
            if key == "$and" or key == "$or":
                items = self.list_of_objects(item, here, depth)
                children.append(AllOf(items) if key == "$and" else AnyOf(items))
            elif key == "$not":
                children.append(NoneOf(self.object(item, here, depth + 1)))
            elif key.startswith("$"):
                raise FilterError(here, "Unknown operator; a filter's keys are fields or "
                                        "$and, $or, $not.")
            else:
                children.extend(self.field_conditions(_field(key, where), item, here))
        return AllOf(tuple(children))

    def list_of_objects(self, value: Any, where: str, depth: int) -> tuple[AllOf, ...]:
        if not isinstance(value, list) or not value:
            raise FilterError(where, "Must be a non-empty list of filters.")
        return tuple(self.object(item, f"{where}[{i}]", depth + 1) for i, item in enumerate(value))

    def field_conditions(self, field: Field, value: Any, where: str) -> list[Node]:
        if isinstance(value, dict) and any(isinstance(k, str) and k.startswith("$")
                                           for k in value):
            if not all(isinstance(k, str) and k.startswith("$") for k in value):
                raise FilterError(where, "Mixes operators with plain keys; put the plain "
                                         "object under $eq.")
            if not value:
                raise FilterError(where, "Names no operator.")
            return [self.condition(field, op, operand, f"{where}.{op}")
                    for op, operand in value.items()]
        return [self.condition(field, "$eq", value, where)]

    def condition(self, field: Field, operator: str, value: Any, where: str) -> Condition:
        self.conditions += 1
        if self.conditions > MAX_CONDITIONS:
            raise FilterError(where, f"More than {MAX_CONDITIONS} conditions in one filter.")
        if operator not in VALUE_OPERATORS:
            raise FilterError(where, f"Unknown operator; use one of {', '.join(VALUE_OPERATORS)}.")
        _check_json(value, where)
        if operator == "$exists":
            if not isinstance(value, bool):
                raise FilterError(where, "Must be true or false.")
            return Condition(field, operator, value)
        if operator in ("$in", "$nin"):
            if not isinstance(value, list) or not value:
                raise FilterError(where, "Must be a non-empty list of values.")
            if len(value) > MAX_IN_VALUES:
                raise FilterError(where, f"Lists at most {MAX_IN_VALUES} values.")
            return Condition(field, operator,
                             tuple(self.operand(field, v, f"{where}[{i}]", operator)
                                   for i, v in enumerate(value)))
        if operator in ("$gt", "$gte", "$lt", "$lte") and (
                isinstance(value, bool) or not isinstance(value, (int, float, str))):
            raise FilterError(where, "Compares only a number or a string.")
        if operator == "$prefix" and not isinstance(value, str):
            raise FilterError(where, "Must be a string.")
        return Condition(field, operator, self.operand(field, value, where, operator))

    def operand(self, field: Field, value: Any, where: str, operator: str) -> Any:
        """A value as it compares: a system column's own type, any JSON value otherwise."""
        if field.source != SYSTEM:
            return value
        name = field.path[0]
        if name in SYSTEM_TEXT_FIELDS:
            if not isinstance(value, str):
                raise FilterError(where, f"{field.name} is text: compare it with a string.")
            return value
        if operator in ("$prefix", "$contains") or not isinstance(value, str):
            raise FilterError(where, f"{field.name} is a time: compare it with an ISO 8601 "
                                     "instant or duration (-PT1H).")
        delta = parse_duration(value)
        if delta is not None:
            return RelativeTime(delta)
        instant = parse_instant(value)
        if instant is None:
            raise FilterError(where, "Not an ISO 8601 instant or duration (e.g. -PT1H, "
                                     "2026-01-31T00:00:00Z).")
        return instant


def _field(key: str, where: str) -> Field:
    here = f"{where}.{key}"
    if len(key) > MAX_KEY_LENGTH:
        raise FilterError(here, f"Keys are at most {MAX_KEY_LENGTH} characters.")
    if key.startswith(INVENTORY_PREFIX):
        source, rest = INVENTORY, key[len(INVENTORY_PREFIX):]
    elif key.startswith(SYSTEM_PREFIX):
        source, rest = SYSTEM, key[len(SYSTEM_PREFIX):]
    elif key == DEVICE_TYPE_KEY:
        source, rest = SYSTEM, "type"
    else:
        source, rest = ATTRIBUTES, key
    path = tuple(rest.split("."))
    if not all(path):
        raise FilterError(here, "A dotted key needs a name between every two dots.")
    if len(path) > MAX_PATH_SEGMENTS:
        raise FilterError(here, f"A key is at most {MAX_PATH_SEGMENTS} names deep.")
    if source == SYSTEM and (len(path) != 1 or path[0] not in SYSTEM_FIELDS):
        raise FilterError(here, f"Unknown system field; use one of "
                                f"{', '.join('system.' + f for f in SYSTEM_FIELDS)}.")
    return Field(source, path)


def _check_json(value: Any, where: str, depth: int = 0) -> None:
    """Only JSON values of bounded depth and length, and no NaN or infinities."""
    if depth > MAX_DEPTH:
        raise FilterError(where, f"Nested deeper than {MAX_DEPTH} levels.")
    if isinstance(value, float) and (value != value or value in (float("inf"), float("-inf"))):
        raise FilterError(where, "Numbers must be finite.")
    if isinstance(value, str) and len(value) > MAX_STRING_LENGTH:
        raise FilterError(where, f"Strings are at most {MAX_STRING_LENGTH} characters.")
    if isinstance(value, str) and "\x00" in value:
        raise FilterError(where, "Strings may not hold NUL characters.")
    if isinstance(value, list):
        for item in value:
            _check_json(item, where, depth + 1)
    elif isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str) or "\x00" in key:
                raise FilterError(where, "Keys must be strings without NUL characters.")
            _check_json(item, where, depth + 1)
    elif value is not None and not isinstance(value, (bool, int, float, str)):
        raise FilterError(where, "Must be a JSON value.")
