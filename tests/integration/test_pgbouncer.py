"""The API behind PgBouncer in transaction pooling: statements are never prepared on the server
(DB_PREPARED_STATEMENTS=false: a statement prepared on one server connection is unknown to the
next), and the idle devices' LISTEN runs on DIRECT_DATABASE_URL, since a pooler in transaction
mode hands the listening server connection to other clients and notifications get lost."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

import psycopg
import pytest
from job_rows import insert_job, next_url, register_fleet
from pgbouncer import PgBouncer
from processes import wait_until

from dispatcher.config import Settings
from dispatcher.fleet.tokens import hash_token
from dispatcher.poll import idle

POLLS_PER_THREAD = 40
THREADS = 6


@pytest.fixture
def pooler():
    bouncer = PgBouncer(pool_size=2)
    yield bouncer
    bouncer.stop()


@pytest.fixture
def pooled_settings(settings, pooler):
    database = psycopg.conninfo.conninfo_to_dict(settings.database_url)["dbname"]
    return replace(settings, database_url=pooler.url(database),
                   direct_database_url=settings.database_url, db_pool_max_size=4,
                   db_prepared_statements=False)


@pytest.fixture
def pooled_app(pooled_settings):
    from api.app import create_app

    application = create_app(pooled_settings)
    application.config["TESTING"] = True
    return application


def test_the_settings_are_read_from_the_environment(monkeypatch):
    monkeypatch.setenv("DATABASE_URL", "postgresql://pgbouncer:6432/jobs")
    assert Settings.from_env().session_database_url == "postgresql://pgbouncer:6432/jobs"
    assert Settings.from_env().db_prepared_statements is True
    monkeypatch.setenv("DIRECT_DATABASE_URL", "postgresql://primary:5432/jobs")
    monkeypatch.setenv("DB_PREPARED_STATEMENTS", "false")
    assert Settings.from_env().session_database_url == "postgresql://primary:5432/jobs"
    assert Settings.from_env().db_prepared_statements is False


def test_polls_from_many_threads_through_transaction_pooling(pooled_app):
    fleet = register_fleet(THREADS)
    job_id = insert_job(fleet)

    def poll_often(device) -> set[int]:
        client = pooled_app.test_client()
        answers = set()
        for _ in range(POLLS_PER_THREAD):
            answer = client.get(next_url(device), headers=device.headers,
                                environ_base={"HTTP_CACHE_CONTROL": "no-cache"})
            assert answer.status_code == 200, answer.get_data(as_text=True)
            answers.add(answer.get_json()["jobId"])
        return answers

    with ThreadPoolExecutor(THREADS) as threads:
        served = list(threads.map(poll_often, fleet))
    assert served == [{str(job_id)}] * THREADS


def test_the_idle_devices_listen_on_the_direct_connection(pooled_app, pooled_settings):
    client = pooled_app.test_client()
    pi, other = register_fleet(2)
    known = idle.start(pooled_settings.session_database_url)
    try:
        wait_until(lambda: known.enabled, 10, "the idle devices loaded")
        for device in (pi, other):
            assert client.get(next_url(device), headers=device.headers
                              ).get_json()["message"] == "No pending jobs"
            assert known.is_idle(device.uuid, hash_token(device.token))
        job_id = insert_job([pi])  # written through PgBouncer
        wait_until(lambda: not known.is_idle(pi.uuid, hash_token(pi.token)), 10,
                   "the notification handled")
        assert client.get(next_url(pi), headers=pi.headers).get_json()["jobId"] == str(job_id)
    finally:
        idle.stop()
