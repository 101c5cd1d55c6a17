"""Target filters as SQL: the filter language (``schemas.filters``) compiled to a predicate.

A predicate is SQL text built only from fixed fragments and placeholders; every value a filter
holds, keys and paths included, travels as a bound parameter, never inside SQL or jsonpath
text. Exact matches (a plain value, ``$eq``, ``$in``, the list side of ``$contains``) become
JSON containment ``column @> %(p)s``, which the GIN indexes on ``attributes`` and
``inventory`` serve; ranges, prefixes and ``$exists`` read the row. Every leaf is true or false,
never NULL, so ``$not`` of a missing key is true, and a value of another type than the operand
(a string where a number is compared, say) is simply false: comparisons are between jsonb
values of one checked type, which cannot raise.

Named queries carry a slot such as ``{{target_filter}}`` where a predicate goes
(``dispatcher.db.Connector.all_filtered``).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeGuard

from psycopg import errors as pg_errors
from psycopg import sql
from psycopg.types.json import Jsonb

from dispatcher import db
from dispatcher.errors import InvalidInput
from schemas.filters import (
    ATTRIBUTES,
    DEVICE_TYPE_KEY,
    INVENTORY,
    AllOf,
    Condition,
    FilterError,
    Node,
    NoneOf,
    RelativeTime,
    fields_of,
    parse_filter,
)

__all__ = ["DEVICE_TYPE_KEY", "EVERY_DEVICE", "Predicate", "bounded_search", "compile_filter",
           "counts_from_fact_signatures", "counts_from_signatures", "devices_in_range",
           "number_range", "parse_target_filter", "static_group_members", "uses_inventory"]

# How long a search or a count for a person waiting may read before it is refused.
SEARCH_TIMEOUT_MS = 5000

TRUE = sql.SQL("true")
FALSE = sql.SQL("false")


@dataclass(frozen=True)
class Predicate:
    """A WHERE condition over one table alias and the parameters it binds."""

    sql: sql.Composable
    params: dict[str, Any] = field(default_factory=dict)


EVERY_DEVICE = Predicate(TRUE)


def parse_target_filter(target_filter: Any, field_name: str = "filter") -> AllOf:
    """The syntax tree of a filter from a request; InvalidInput naming the wrong part."""
    try:
        return parse_filter(target_filter, field_name)
    except FilterError as exc:
        part = exc.where[len(field_name) + 1:]
        errors = {field_name: {part: [exc.message]} if part else [exc.message]}
        raise InvalidInput(f"{exc.where}: {exc.message}", errors=errors) from exc


def uses_inventory(tree: Node) -> bool:
    """Whether the filter names a device-reported fact (``inventory.`` or
    ``system.agent_version``, which the agent reports)."""
    return any(f.source == INVENTORY or f.path == ("agent_version",) for f in fields_of(tree))


def counts_from_signatures(tree: Node) -> bool:
    """Whether the filter names only the device type and attributes, so that it can be
    counted from the maintained device signatures instead of the devices."""
    return all(f.source == ATTRIBUTES or f.path == ("type",) for f in fields_of(tree))


def counts_from_fact_signatures(tree: Node, summarised: Iterable[tuple[str, ...]]) -> bool:
    """Whether the filter names only the device type, attributes and the ``summarised``
    inventory facts (paths, ``fact_signature_paths()`` in the database) or keys under them,
    so that it evaluates on a fact signature, which holds each summarised fact's whole value,
    exactly as on each of its devices. ``inventory.os`` itself is not summarised (a device's
    os holds more than its summarised keys); ``inventory.os.id`` is."""
    facts = tuple(summarised)

    def summarised_fact(path: tuple[str, ...]) -> bool:
        return any(path[:len(fact)] == fact for fact in facts)

    # system.agent_version reads the inventory's agent_version.
    return all(f.source == ATTRIBUTES or f.path == ("type",)
               or ((f.source == INVENTORY or f.path == ("agent_version",))
                   and summarised_fact(f.path))
               for f in fields_of(tree))


RANGES = ("$gt", "$gte", "$lt", "$lte")


def number_range(tree: Node) -> Predicate | None:
    """The filter as a condition on a ``device_inventory_numbers`` row ``n`` when it is one
    range of one numeric inventory fact (comparisons with numbers, all on one path, all of
    which must hold), so that it is counted by an index-only scan of (path id, value);
    else None.

    A number in a list is no leaf there, so a path that could step into a list (a key after
    the first that reads as a list index, as ``#>`` takes it) is not counted this way."""
    parts = list(_conjuncts(tree))
    conditions = [c for c in parts if _number_comparison(c)]
    if not parts or len(conditions) != len(parts):
        return None
    paths = {c.field.path for c in conditions}
    if len(paths) != 1:
        return None
    path = paths.pop()
    if any(_list_index(key) for key in path[1:]):
        return None
    compiler = _Compiler("numbers", "n", datetime.now(UTC))
    tests = [sql.SQL("{} = (SELECT p.id FROM inventory_number_paths p WHERE p.path = {})").format(
        compiler.column("path_id"), compiler.bind(list(path), "text[]"))]
    tests += [sql.SQL("{} {} ({})::numeric").format(
        compiler.column("value"), sql.SQL(_SQL_COMPARISON[c.operator]),
        compiler.bind(_json(c.value), "jsonb")) for c in conditions]
    return Predicate(sql.SQL(" AND ").join(tests), compiler.params)


def devices_in_range(numbers: Predicate) -> Predicate:
    """The devices row ``d`` whose numbers ``number_range`` selects: a page of a search finds
    its few devices by the (path id, value) index (6 ms at 1M devices for one with less than
    10 MB free, where reading every inventory in uuid order until 50 matched took 0.8-1.2 s)."""
    return Predicate(sql.SQL("d.uuid IN (SELECT n.device_uuid FROM device_inventory_numbers n"
                             " WHERE {})").format(numbers.sql), numbers.params)


def _conjuncts(node: Node) -> Iterator[Node]:
    if isinstance(node, AllOf):
        for child in node.children:
            yield from _conjuncts(child)
    else:
        yield node


def _number_comparison(node: Node) -> TypeGuard[Condition]:
    return (isinstance(node, Condition) and node.field.source == INVENTORY
            and node.operator in RANGES and not isinstance(node.value, bool)
            and isinstance(node.value, (int, float)))


def _list_index(key: str) -> bool:
    try:
        int(key)
    except ValueError:
        return False
    return True


@contextmanager
def bounded_search(c: db.Connector, timeout_ms: int | None = None) -> Iterator[None]:
    """Run the block's statements (in ``c``'s transaction) under a time limit; a filter that
    reads past it, one no index serves, is refused with InvalidInput saying so."""
    timeout_ms = timeout_ms or SEARCH_TIMEOUT_MS
    c.execute("bound_filter_time", timeout_ms=timeout_ms)
    try:
        yield
    except pg_errors.QueryCanceled as exc:
        raise InvalidInput(
            f"The filter took longer than {timeout_ms} ms: no index serves it (ranges, "
            "prefixes and $exists read every device). Add an exact match (a plain value or "
            "$in) to narrow it.", errors={"filter": ["Too slow without an index."]},
        ) from exc


def static_group_members(group_name: str, name: str) -> Predicate:
    """The condition "device ``d`` is listed in the static group ``group_name``"."""
    key = f"{name}_group"
    return Predicate(sql.SQL(
        "EXISTS (SELECT 1 FROM device_group_members m WHERE m.group_name = {}::text"
        " AND m.device_uuid = d.uuid)").format(sql.Placeholder(key)), {key: group_name})


def compile_filter(tree: Node, name: str, alias: str = "d",
                   now: datetime | None = None) -> Predicate:
    """The predicate of ``tree`` over the devices (or device_signatures, fact_signatures) row
    ``alias``.

    ``name`` prefixes the parameters, so two predicates can share a statement; relative times
    count from ``now``.
    """
    compiler = _Compiler(name, alias, now or datetime.now(UTC))
    return Predicate(compiler.node(tree), compiler.params)


class _Compiler:
    def __init__(self, name: str, alias: str, now: datetime) -> None:
        self.name = name
        self.alias = alias
        self.now = now
        self.params: dict[str, Any] = {}

    def bind(self, value: Any, cast: str) -> sql.Composable:
        key = f"{self.name}_{len(self.params)}"
        self.params[key] = value
        return sql.SQL("{}::{}").format(sql.Placeholder(key), sql.SQL(cast))

    def column(self, name: str) -> sql.Composable:
        return sql.Identifier(self.alias, name)

    def node(self, node: Node) -> sql.Composable:
        if isinstance(node, Condition):
            return self.condition(node)
        if isinstance(node, NoneOf):
            return sql.SQL("NOT ({})").format(self.node(node.child))
        parts = [self.node(child) for child in node.children]
        if not parts:
            return TRUE if isinstance(node, AllOf) else FALSE
        if len(parts) == 1:
            return parts[0]
        joiner = sql.SQL(" AND ") if isinstance(node, AllOf) else sql.SQL(" OR ")
        return sql.SQL("({})").format(joiner.join(parts))

    def condition(self, node: Condition) -> sql.Composable:
        if node.field.source == ATTRIBUTES or node.field.source == INVENTORY:
            return self.json_condition(self.column(node.field.source), node)
        name = node.field.path[0]
        if name == "agent_version":
            value = sql.SQL("({} ->> 'agent_version')").format(self.column(INVENTORY))
            return self.scalar_condition(value, "text", node, nullable=True)
        column = {"name": "device_name", "type": "device_type"}.get(name, name)
        cast = "text" if name in ("name", "type") else "timestamptz"
        return self.scalar_condition(self.column(column), cast, node,
                                     nullable=column not in _NOT_NULL_COLUMNS)

    # device-reported JSON (attributes, inventory): jsonb at a path

    def json_condition(self, column: sql.Composable, node: Condition) -> sql.Composable:
        path = node.field.path
        op, value = node.operator, node.value
        if op == "$eq":
            return self.contains(column, path, value)
        if op == "$in":
            return self.any_of(self.contains(column, path, v) for v in value)
        if op == "$contains" and not isinstance(value, str):
            return self.contains(column, path, [value])
        at = self.value_at(column, path)
        if op == "$ne":
            return sql.SQL("({} IS NOT NULL AND NOT {})").format(
                at, self.contains(column, path, value))
        if op == "$nin":
            return sql.SQL("({} IS NOT NULL AND NOT {})").format(
                at, self.any_of(self.contains(column, path, v) for v in value))
        if op == "$exists":
            return sql.SQL("({} IS {} NULL)").format(at, sql.SQL("NOT" if value else ""))
        if op == "$prefix":
            return sql.SQL("coalesce(jsonb_typeof({at}) = 'string' AND starts_with({at} #>> "
                           "'{{}}', {v}), false)").format(at=at, v=self.bind(value, "text"))
        if op == "$contains":
            element = self.contains(column, path, [value])
            return sql.SQL("({el} OR coalesce(jsonb_typeof({at}) = 'string' AND "
                           "strpos({at} #>> '{{}}', {v}) > 0, false))").format(
                el=element, at=at, v=self.bind(value, "text"))
        kind = "number" if isinstance(value, (int, float)) else "string"
        return sql.SQL("coalesce(jsonb_typeof({at}) = {kind} AND {at} {op} {v}, false)").format(
            at=at, kind=sql.Literal(kind), op=sql.SQL(_SQL_COMPARISON[op]),
            v=self.bind(_json(value), "jsonb"))

    def value_at(self, column: sql.Composable, path: tuple[str, ...]) -> sql.Composable:
        """The jsonb at ``path`` in the object ``column`` (NULL where there is none). A
        top-level key is read with ``->``, which looks the key up directly, where ``#>``
        first takes its path array apart for every row: a range over the whole fleet costs
        that much less. Deeper paths keep ``#>``."""
        if len(path) == 1:
            return sql.SQL("({} -> {})").format(column, self.bind(path[0], "text"))
        return sql.SQL("({} #> {})").format(column, self.bind(list(path), "text[]"))

    def contains(self, column: sql.Composable, path: tuple[str, ...],
                 value: Any) -> sql.Composable:
        nested = value
        for key in reversed(path):
            nested = {key: nested}
        return sql.SQL("{} @> {}").format(column, self.bind(_json(nested), "jsonb"))

    @staticmethod
    def any_of(parts: Iterable[sql.Composable]) -> sql.Composable:
        return sql.SQL("({})").format(sql.SQL(" OR ").join(list(parts)))

    # the server's columns: text and times

    def scalar_condition(self, value: sql.Composable, cast: str, node: Condition,
                         nullable: bool) -> sql.Composable:
        """A comparison on a column; on a nullable one, false (never NULL) where it is NULL.
        A NOT NULL column is compared bare, so its btree index (device_type) serves it."""
        return (self.never_null(self.scalar_test(value, cast, node)) if nullable
                else self.scalar_test(value, cast, node))

    @staticmethod
    def never_null(test: sql.Composable) -> sql.Composable:
        return sql.SQL("coalesce({}, false)").format(test)

    def scalar_test(self, value: sql.Composable, cast: str, node: Condition) -> sql.Composable:
        op, operand = node.operator, node.value
        if op == "$exists":
            return sql.SQL("({} IS {} NULL)").format(value, sql.SQL("NOT" if operand else ""))
        if op in ("$in", "$nin"):
            items = [self.instant(v) for v in operand]
            test = "= ANY" if op == "$in" else "<> ALL"
            return sql.SQL("{} {} ({})").format(
                value, sql.SQL(test), self.bind(items, cast + "[]"))
        if op == "$prefix":
            return sql.SQL("starts_with({}, {})").format(value, self.bind(operand, "text"))
        if op == "$contains":
            return sql.SQL("strpos({}, {}) > 0").format(value, self.bind(operand, "text"))
        return sql.SQL("{} {} {}").format(
            value, sql.SQL(_SQL_COMPARISON[op]), self.bind(self.instant(operand), cast))

    def instant(self, value: Any) -> Any:
        return self.now + value.offset if isinstance(value, RelativeTime) else value


# Server columns that are never NULL: compared without coalesce, so an index can serve them.
_NOT_NULL_COLUMNS = ("device_name", "device_type", "created_at")
_SQL_COMPARISON = {"$eq": "=", "$ne": "<>", "$gt": ">", "$gte": ">=", "$lt": "<", "$lte": "<="}


def _json(value: Any) -> Jsonb:
    return Jsonb(value)
