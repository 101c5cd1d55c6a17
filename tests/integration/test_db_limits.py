"""The client-side limits on PostgreSQL (``dispatcher.db_limits``) through a proxy that stalls:
a query answers ``Unavailable`` (503) within ``DB_QUERY_TIMEOUT_S`` instead of waiting for the
network, a new connection gives up within ``DB_CONNECT_TIMEOUT_S``, and once the network is
back the pool serves again."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import replace

import pytest
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from tcp_proxy import TcpProxy

from dispatcher import db
from dispatcher.db_limits import AnswerTimedOut
from dispatcher.errors import Unavailable

LIMIT_S = 2


@pytest.fixture
def proxied(settings) -> Iterator[TcpProxy]:
    params = conninfo_to_dict(settings.database_url)
    proxy = TcpProxy(int(params.get("port") or 5432))
    db.configure(replace(
        settings, database_url=make_conninfo(settings.database_url, host="127.0.0.1",
                                             port=str(proxy.port)),
        db_pool_min_size=1, db_pool_timeout_s=LIMIT_S, db_connect_timeout_s=LIMIT_S,
        db_query_timeout_s=LIMIT_S))
    try:
        yield proxy
    finally:
        proxy.close()
        db.configure(settings)


def test_a_stalled_network_answers_unavailable_in_time_and_the_pool_recovers(proxied):
    assert db.one("ping") is not None
    proxied.stall()
    causes = []
    for _ in range(2):  # a pooled connection's query, then a wait for a new connection
        started = time.monotonic()
        with pytest.raises(Unavailable) as raised:
            db.one("ping")
        took_s = time.monotonic() - started
        assert took_s < 2 * LIMIT_S + 1, took_s  # a wait for the pool, then for one answer
        causes.append(raised.value.__cause__)
    assert isinstance(causes[0], AnswerTimedOut), causes
    proxied.heal()
    assert db.one("ping") is not None
