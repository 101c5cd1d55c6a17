"""Shared fixtures: a real PostgreSQL database per test, cloned from a migrated template.

The template is migrated once per test session; each test gets ``CREATE DATABASE … TEMPLATE``,
which is fast and fully isolated. Names carry the process id, so several test runs can share
one PostgreSQL server.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator

import psycopg
import pytest
from suite_constants import PG_ADMIN_URL, TEST_ADMIN_TOKEN

from dispatcher import db
from dispatcher.config import Settings
from dispatcher.migrate import migrate

_counter = itertools.count()


def _db_url(name: str) -> str:
    return psycopg.conninfo.make_conninfo(PG_ADMIN_URL, dbname=name)


def _drop_database(name: str) -> None:
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def template_database() -> Iterator[str]:
    name = f"djtest_tpl_{os.getpid()}"
    _drop_database(name)
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    migrate(_db_url(name))
    yield name
    db.close()
    _drop_database(name)


@pytest.fixture
def database_url(template_database: str) -> Iterator[str]:
    name = f"djtest_{os.getpid()}_{next(_counter)}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template_database}"')
    yield _db_url(name)
    db.close()
    _drop_database(name)


@pytest.fixture
def settings(database_url: str, tmp_path) -> Settings:
    unique = f"djtest{os.getpid()}x{next(_counter)}"
    return Settings(
        database_url=database_url,
        celery_key_prefix=f"{unique}:",
        admin_token=TEST_ADMIN_TOKEN,
        auth_disabled=False,
        mqtt_url="",
        artifact_dir=str(tmp_path / "artifacts"),
    )


@pytest.fixture
def app(settings: Settings):
    from api.app import create_app

    application = create_app(settings)
    application.config["TESTING"] = True
    return application


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def admin_headers() -> dict[str, str]:
    return {"Authorization": f"Bearer {TEST_ADMIN_TOKEN}"}


@pytest.fixture
def viewer_headers(app) -> dict[str, str]:
    from dispatcher.fleet.tokens import create_api_token

    token, _ = create_api_token("viewer", "test viewer")
    return {"Authorization": f"Bearer {token}"}


# Real server processes (tests/processes.py): each started with the test's Settings, so they
# share its database and Celery key prefix; all are stopped, and the test's broker keys
# deleted, when the test ends.
@pytest.fixture
def server_processes(settings: Settings, tmp_path) -> Iterator:
    from processes import ServerProcesses, purge_broker_keys

    with ServerProcesses(tmp_path / "processes") as servers:
        yield servers
    purge_broker_keys(settings)


@pytest.fixture
def celery_worker(settings: Settings, server_processes):
    """A Celery worker (prefork, one child) consuming every queue."""
    return server_processes.start_worker(settings)


@pytest.fixture
def celery_beat(settings: Settings, server_processes):
    return server_processes.start_beat(settings)


@pytest.fixture
def api_server(settings: Settings, server_processes):
    """The API under gunicorn; ``api_server.url`` is its base URL."""
    return server_processes.start_api(settings)
