"""The per-thread connection the device poll runs on.

The poll is the hottest query of the product, run thousands of times a second. Each thread of
an API process runs it on a connection of its own: no pool checkout and return per call,
psycopg prepares the statement on its first run instead of its fifth, and the cursor and its
row factory are reused. These connections are closed whenever the pool is (``db.on_close``).
"""

from __future__ import annotations

import threading
from typing import Any

import psycopg
from psycopg.rows import RowFactory

from dispatcher import db
from dispatcher.db_limits import AnswerTimedOut, BoundedConnection

_lock = threading.Lock()
_held = threading.local()
_connections: set[psycopg.Connection] = set()
_generation = 0


def own_one(query: str, row_factory: RowFactory, /, **params: Any) -> Any:
    """One row (made by ``row_factory``) of a read-only query, run on this thread's own
    connection; None when there is none. A connection found lost is replaced and the query run
    once more, which is safe only because the query writes nothing (not when it went unanswered
    in time: waiting out a stalled network twice helps no one). A database that cannot be
    reached raises ``Unavailable``."""
    with db.unavailable_when_unreachable():
        for attempt in (1, 2):
            cursor = _cursor(row_factory)
            try:
                with db.translate_errors():
                    row = cursor.execute(db.QUERIES[query], params,
                                         prepare=db.prepared_statements()).fetchone()
            except psycopg.OperationalError as exc:
                if attempt == 2 or not cursor.connection.closed or isinstance(
                        exc, AnswerTimedOut):
                    raise
                _forget(cursor.connection)
                continue
            if db.outage.active:
                db.outage.ended()
            return row
    raise AssertionError("unreachable")


def _cursor(row_factory: RowFactory) -> psycopg.Cursor:
    held = getattr(_held, "cursor", None)
    if held is not None and held[0] == _generation and not held[1].connection.closed:
        cursor = held[1]
    else:
        conn = BoundedConnection.connect(db.database_url(), autocommit=True,
                                         **db.connect_options())
        with _lock:
            _connections.add(conn)
            generation = _generation
        cursor = conn.cursor()
        _held.cursor = (generation, cursor)
    cursor.row_factory = row_factory
    return cursor


def _forget(conn: psycopg.Connection) -> None:
    with _lock:
        _connections.discard(conn)
    conn.close()
    _held.cursor = None


def close_all() -> None:
    """Close every thread's connection; each thread opens a new one, to the database
    configured then, on its next query."""
    global _generation
    with _lock:
        _generation += 1
        for conn in _connections:
            conn.close()
        _connections.clear()


db.on_close(close_all)
