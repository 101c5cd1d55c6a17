"""Time limits on every connection to PostgreSQL, so that no caller waits for ever on a network
that stalled: connecting (``DB_CONNECT_TIMEOUT_S``) and every wait for an answer
(``DB_QUERY_TIMEOUT_S``).

PostgreSQL's own ``statement_timeout`` cannot do the second: when the network stalls, the server
never sees the query, or its answer never comes back. TCP keepalives and ``tcp_user_timeout``
end a connection whose peer stops acknowledging (a host gone, a cable out), but not one through
a middlebox (a proxy, a NAT, a load balancer) that keeps acknowledging and forwards nothing. So
the limit is the client's: psycopg waits for each answer at most that long, then the connection
is closed (its protocol is cut mid-way and cannot be used again) and the caller gets an
``OperationalError``, which the API answers 503 with Retry-After; the pool drops the closed
connection and opens new ones once the network is back.
"""

from __future__ import annotations

from typing import Any, TypeVar

import psycopg
from psycopg import errors as pg_errors
from psycopg.abc import PQGen

RV = TypeVar("RV")

# psycopg's own interval between checks for an interrupt while it waits.
WAIT_INTERVAL_S = 0.1
# Keepalive probes on an idle connection: a peer gone silent is found within about
# KEEPALIVE_IDLE_S + KEEPALIVE_INTERVAL_S * KEEPALIVE_COUNT seconds.
KEEPALIVE_IDLE_S = 10
KEEPALIVE_INTERVAL_S = 3
KEEPALIVE_COUNT = 3


class AnswerTimedOut(psycopg.OperationalError):
    """PostgreSQL did not answer within ``DB_QUERY_TIMEOUT_S``; the connection was closed."""


class BoundedConnection(psycopg.Connection[Any]):
    """A psycopg connection that waits for no answer longer than ``query_timeout_s``
    (a process-wide limit set by ``dispatcher.db.configure``; 0: no limit).

    Waits that carry their own timeout (``notifies(timeout=…)``) keep it.
    """

    query_timeout_s: float = 0.0

    def wait(self, gen: PQGen[RV], interval: float = WAIT_INTERVAL_S,
             timeout: float | None = None) -> RV:
        limit = type(self).query_timeout_s
        if timeout is not None or limit <= 0:
            return super().wait(gen, interval, timeout)
        try:
            return super().wait(gen, interval, limit)
        except pg_errors._WaitTimeout:  # psycopg's own "no answer in time"
            self.close()
            raise AnswerTimedOut(
                f"no answer from PostgreSQL within {limit:g} s (DB_QUERY_TIMEOUT_S): the "
                "network or the server stalled; the connection was closed") from None


def network_options(connect_timeout_s: int, query_timeout_s: float) -> dict[str, Any]:
    """libpq options of every connection: a limit on connecting, keepalives, and a limit on
    data left unacknowledged (``tcp_user_timeout``, in ms) as long as the query limit."""
    options: dict[str, Any] = {
        "keepalives": 1, "keepalives_idle": KEEPALIVE_IDLE_S,
        "keepalives_interval": KEEPALIVE_INTERVAL_S, "keepalives_count": KEEPALIVE_COUNT,
    }
    if connect_timeout_s > 0:
        options["connect_timeout"] = connect_timeout_s
    if query_timeout_s > 0:
        options["tcp_user_timeout"] = int(query_timeout_s * 1000)
    return options
