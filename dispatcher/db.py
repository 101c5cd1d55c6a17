"""Database access: the connection pool, the named queries, and a thin connector.

Every SQL statement lives in the ``.sql`` file beside the module that runs it
(``dispatcher/jobs/create.sql`` beside ``create.py``) under a ``-- name: <query_name>`` header,
and all of them are loaded once at import; SQL that several queries share is a ``-- part:``
they each name. Python code calls ``db.one("query_name", **params)``;
no SQL is assembled from strings anywhere else.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg
from psycopg import errors as pg_errors
from psycopg import sql
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb
from psycopg_pool import ConnectionPool

from dispatcher.config import Settings
from dispatcher.db_limits import BoundedConnection, network_options
from dispatcher.errors import Conflict, InvalidInput, RolledBack, Unavailable

log = logging.getLogger(__name__)

PACKAGE_DIR = Path(__file__).parent
_HEADER = re.compile(r"^--\s*(name|part):\s*([a-z_][a-z0-9_]*)\s*$", re.MULTILINE)
# Where a query takes a part: ``{{part:name}}``, replaced by the part's text when loading.
_PART = re.compile(r"\{\{part:([a-z_][a-z0-9_]*)\}\}")


def query_files(directory: Path = PACKAGE_DIR) -> list[Path]:
    """The .sql files of named queries: each beside the module that runs its queries."""
    return sorted(path for path in directory.rglob("*.sql")
                  if "migrations" not in path.relative_to(directory).parts)


def load_queries(directory: Path = PACKAGE_DIR) -> dict[str, str]:
    """Read every ``-- name: x`` section of every query file under ``directory``. A ``-- part:
    x`` section is no query: it is the SQL that several queries share, which each takes where
    it says ``{{part:x}}``."""
    sections: dict[str, dict[str, str]] = {"name": {}, "part": {}}
    for path in query_files(directory):
        text = path.read_text()
        marks = list(_HEADER.finditer(text))
        for i, mark in enumerate(marks):
            end = marks[i + 1].start() if i + 1 < len(marks) else len(text)
            kind, name = mark.groups()
            if name in sections[kind]:
                raise RuntimeError(f"{'query' if kind == 'name' else 'part'} {name!r} is "
                                   f"defined twice (second time in {path.name})")
            sections[kind][name] = text[mark.end() : end].strip()
    # A part's opening comment speaks of the part; what it stands for in a query is its SQL.
    parts = {name: re.sub(r"\A(?:--[^\n]*\n)*", "", body)
             for name, body in sections["part"].items()}
    return {name: _PART.sub(lambda use: parts[use.group(1)], body)
            for name, body in sections["name"].items()}


QUERIES = load_queries()

_pool: ConnectionPool | None = None
_pool_lock = threading.Lock()
_database_url = ""
_prepared_statements = True
_network_options: dict[str, Any] = {}
# Called with the lock held whenever the pool is replaced or closed: connections kept outside
# the pool (``dispatcher.poll.connection``) are closed with it.
_close_hooks: list[Callable[[], None]] = []


def configure(settings: Settings) -> ConnectionPool:
    """Open (or reopen) the process-wide pool for ``settings.database_url``."""
    global _pool, _database_url, _prepared_statements, _network_options
    with _pool_lock:
        if _pool is not None:
            _pool.close()
        _run_close_hooks()
        _database_url = settings.database_url
        _prepared_statements = settings.db_prepared_statements
        _network_options = network_options(settings.db_connect_timeout_s,
                                           settings.db_query_timeout_s)
        BoundedConnection.query_timeout_s = settings.db_query_timeout_s
        _pool = ConnectionPool(
            settings.database_url,
            connection_class=BoundedConnection,
            min_size=settings.db_pool_min_size,
            max_size=settings.db_pool_max_size,
            kwargs={"row_factory": dict_row, "autocommit": True, **_connect_options()},
            timeout=settings.db_pool_timeout_s,
            open=True,
            name="device-jobs",
        )
        return _pool


def pool() -> ConnectionPool:
    global _pool
    if _pool is None:
        configure(Settings.from_env())
    assert _pool is not None
    return _pool


def close() -> None:
    global _pool
    with _pool_lock:
        if _pool is not None:
            _pool.close()
            _pool = None
        _run_close_hooks()


def ping(timeout_s: float) -> None:
    """Raise unless PostgreSQL answers within ``timeout_s`` (readiness)."""
    with pool().connection(timeout=timeout_s) as conn:
        conn.execute(QUERIES["ping"])


def database_url() -> str:
    """The URL the pool connects to (configured from the environment when nothing was)."""
    pool()
    return _database_url


def prepared_statements() -> bool:
    """Whether statements may be prepared on the server (off behind a transaction pooler
    that does not track them)."""
    pool()
    return _prepared_statements


def connect_options() -> dict[str, Any]:
    """psycopg's options for a connection to ``database_url()`` (made with
    ``BoundedConnection``): the network's time limits, and never prepare when off."""
    pool()
    return _connect_options()


def _connect_options() -> dict[str, Any]:
    return {**_network_options,
            **({} if _prepared_statements else {"prepare_threshold": None})}


def on_close(hook: Callable[[], None]) -> None:
    """Run ``hook`` whenever the pool is replaced or closed."""
    _close_hooks.append(hook)


def _run_close_hooks() -> None:
    for hook in _close_hooks:
        hook()


def jsonb(value: Any) -> Jsonb | None:
    return None if value is None else Jsonb(value)


@contextmanager
def translate_errors() -> Iterator[None]:
    """Turn driver errors caused by the caller's data into domain errors.

    The messages name the constraint, never the values: PostgreSQL's detail repeats the
    failing row, which may hold other fields (or secrets) the caller never sent.
    """
    try:
        yield
    except pg_errors.UniqueViolation as exc:
        raise Conflict(_constraint_message(exc, "already exists")) from exc
    except pg_errors.ForeignKeyViolation as exc:
        message = _constraint_message(exc, "refers to something that does not exist")
        raise InvalidInput(message) from exc
    except (pg_errors.CheckViolation, pg_errors.InvalidTextRepresentation,
            pg_errors.NumericValueOutOfRange, pg_errors.StringDataRightTruncation) as exc:
        raise InvalidInput(_constraint_message(exc, "is not valid")) from exc


def _constraint_message(exc: psycopg.Error, what: str) -> str:
    diag = exc.diag
    return f"{diag.constraint_name or diag.column_name or 'value'} {what}"


class _Outage:
    """Whether the database is known unreachable, so an outage is logged once, not per request.

    A request that began before the outage ended and fails afterwards (it waited for a pool
    connection through the outage's last seconds) belongs to that outage: it is not a new one.
    Written by any thread without a lock: at worst two threads both log the same transition.
    """

    active = False
    ended_at = float("-inf")

    def began(self, exc: BaseException, attempt_started: float = float("inf")) -> None:
        if not self.active and attempt_started > self.ended_at:
            self.active = True
            log.warning("database unavailable: %s", _first_line(exc))

    def ended(self) -> None:
        if self.active:
            self.active = False
            self.ended_at = time.monotonic()
            log.warning("database reachable again")


outage = _Outage()

# SQLSTATE class 40, transaction rollback: deadlock_detected, serialization_failure, …
TRANSACTION_ROLLBACK_CLASS = "40"


@contextmanager
def unavailable_when_unreachable() -> Iterator[None]:
    """Turn a lost or refused connection (or no free pool connection in time) into
    ``Unavailable``, which the API answers with 503 and Retry-After.

    A transaction PostgreSQL rolled back to break a deadlock (or a serialization failure) is
    also answered "retry", but it is no outage: the database answered, and the retry will
    succeed. psycopg classes it as an OperationalError, so it is told apart here and logged as
    what it is (by its SQLSTATE class), leaving the outage state alone.
    """
    started = time.monotonic()
    try:
        yield
    except psycopg.OperationalError as exc:
        if (exc.sqlstate or "").startswith(TRANSACTION_ROLLBACK_CLASS):
            log.warning("transaction rolled back by the database, to be retried: %s",
                        _first_line(exc))
            raise RolledBack("The change collided with another one; retry.") from exc
        outage.began(exc, started)
        raise Unavailable("The database is unavailable; retry later.") from exc


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


class Connector:
    """Runs named queries on one connection (inside a transaction when one is open)."""

    def __init__(self, conn: psycopg.Connection[Any]) -> None:
        self.conn = conn

    def execute(self, query: str, /, **params: Any) -> int:
        with translate_errors():
            cur = self.conn.execute(QUERIES[query], params or None)
        return cur.rowcount

    def one(self, query: str, /, **params: Any) -> dict | None:
        """The first row, or None when the query finds none."""
        with translate_errors():
            return self.conn.execute(QUERIES[query], params or None).fetchone()

    def row(self, query: str, /, **params: Any) -> dict:
        """The row of a statement that always answers one (an aggregate, INSERT … RETURNING)."""
        return _required(query, self.one(query, **params))

    def all(self, query: str, /, **params: Any) -> list[dict]:
        with translate_errors():
            return self.conn.execute(QUERIES[query], params or None).fetchall()

    # psycopg prepares a query after a few runs, and PostgreSQL may then reuse one generic
    # plan. A query whose best plan depends on which optional filters are NULL (a keyset page
    # by target kind) is never prepared, so it is planned for its actual values every time.
    # (plan_cache_mode = force_custom_plan would do the same, but also re-plans every foreign
    # key check, which costs more than the query.)

    def one_unprepared(self, query: str, /, **params: Any) -> dict | None:
        with translate_errors():
            return self.conn.execute(QUERIES[query], params or None, prepare=False).fetchone()

    def row_unprepared(self, query: str, /, **params: Any) -> dict:
        return _required(query, self.one_unprepared(query, **params))

    def all_unprepared(self, query: str, /, **params: Any) -> list[dict]:
        with translate_errors():
            return self.conn.execute(QUERIES[query], params or None, prepare=False).fetchall()

    # A query with ``{{slot}}`` marks takes a compiled target filter in each
    # (``dispatcher.fleet.filters``): the predicate's SQL goes in the slot, its values are
    # bound like every other parameter. Never prepared: each filter has its own text.

    def all_filtered(self, query: str, /, slots: dict[str, Any], **params: Any) -> list[dict]:
        statement, bound = _fill_slots(query, slots, params)
        with translate_errors():
            return self.conn.execute(statement, bound, prepare=False).fetchall()

    def row_filtered(self, query: str, /, slots: dict[str, Any], **params: Any) -> dict:
        found = self.all_filtered(query, slots, **params)
        return _required(query, found[0] if found else None)


_SLOT = re.compile(r"\{\{([a-z_]+)\}\}")


def _fill_slots(query: str, slots: dict[str, Any], params: dict[str, Any]
                ) -> tuple[sql.Composed, dict[str, Any]]:
    """The statement of ``query`` with each ``{{slot}}`` replaced by its predicate's SQL, and
    the parameters of the query and of every predicate."""
    pieces = _SLOT.split(QUERIES[query])
    parts: list[sql.Composable] = []
    bound = dict(params)
    for i, piece in enumerate(pieces):
        if i % 2 == 0:
            parts.append(sql.SQL(piece))
        else:
            predicate = slots[piece]
            parts.append(sql.SQL("({})").format(predicate.sql))
            bound.update(predicate.params)
    return sql.Composed(parts), bound


def _required(query: str, found: dict | None) -> dict:
    if found is None:
        raise RuntimeError(f"query {query!r} answered no row")
    return found


@contextmanager
def connect() -> Iterator[Connector]:
    """A pooled connection in autocommit mode: each statement is its own transaction."""
    with unavailable_when_unreachable(), pool().connection() as conn:
        yield Connector(conn)
    # Only a block that ran (a connection handed out can still turn out dead) ends an outage.
    if outage.active:
        outage.ended()


@contextmanager
def transaction() -> Iterator[Connector]:
    """A pooled connection with one transaction around the block."""
    with unavailable_when_unreachable(), pool().connection() as conn, conn.transaction():
        yield Connector(conn)
    if outage.active:
        outage.ended()


def execute(query: str, /, **params: Any) -> int:
    with connect() as c:
        return c.execute(query, **params)


def one(query: str, /, **params: Any) -> dict | None:
    with connect() as c:
        return c.one(query, **params)


def row(query: str, /, **params: Any) -> dict:
    with connect() as c:
        return c.row(query, **params)


def page(
    query: str, /, key: str, count_query: str, *, limit: int, offset: int, **params: Any
) -> dict:
    """One page of a list: ``{key: rows, total, limit, offset}``.

    ``query`` returns the page (``limit`` rows from ``offset``); ``count_query`` (returning
    ``n``) counts the whole list, and is asked only when the page cannot tell: a page shorter
    than ``limit`` ends the list, so its total is ``offset`` plus its rows. Counting apart
    from the page can read the list's index alone, where a window count reads every row.
    """
    with connect() as c:
        rows = c.all(query, limit=limit, offset=offset, **params)
        if 0 < len(rows) < limit or (not rows and not offset):
            total = offset + len(rows)
        else:
            total = c.row(count_query, **params)["n"]
    return {key: rows, "total": total, "limit": limit, "offset": offset}


def all(query: str, /, **params: Any) -> list[dict]:  # noqa: A001 - mirrors Connector.all
    with connect() as c:
        return c.all(query, **params)
