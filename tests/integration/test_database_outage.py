"""A database outage answers 503 with Retry-After on every endpoint, logged once, not a 500 with
a traceback per request. Runs on a PostgreSQL of its own, which it stops and starts again."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from dataclasses import replace

import psycopg
import pytest
from job_rows import insert_job, register_fleet
from private_postgres import PrivatePostgres
from suite_constants import TEST_ADMIN_TOKEN

from dispatcher import db
from dispatcher.config import Settings
from dispatcher.migrate import migrate


@pytest.fixture
def private_postgres() -> Iterator[PrivatePostgres]:
    server = PrivatePostgres()
    server.start()
    try:
        yield server
    finally:
        db.close()
        server.remove()


@pytest.fixture
def outage_app(private_postgres: PrivatePostgres):
    from api.app import create_app

    with psycopg.connect(private_postgres.url, autocommit=True) as conn:
        conn.execute("CREATE DATABASE device_jobs")
    url = psycopg.conninfo.make_conninfo(private_postgres.url, dbname="device_jobs")
    migrate(url)
    settings = replace(Settings(), database_url=url, admin_token=TEST_ADMIN_TOKEN,
                       mqtt_url="", db_pool_timeout_s=1)
    application = create_app(settings)
    application.config["TESTING"] = True
    return application


def test_every_endpoint_answers_503_while_the_database_is_down(outage_app, private_postgres,
                                                               caplog):
    client = outage_app.test_client()
    admin = {"Authorization": f"Bearer {TEST_ADMIN_TOKEN}"}
    busy, idle = register_fleet(2)
    job_id = insert_job([busy])
    private_postgres.stop()
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        answers = [
            client.get("/api/v1/devices", headers=admin),
            client.get(f"/api/v1/jobs/executions/{job_id}", headers=admin),
            client.post("/api/v1/devices", json={"device_name": "pi"}, headers=admin),
            client.get(f"/api/v1/devices/{busy.uuid}/jobs/next", headers=busy.headers),
            client.patch(f"/api/v1/devices/{busy.uuid}/jobs/{job_id}/status",
                         json={"status": "IN_PROGRESS"}, headers=busy.headers),
            client.get(f"/api/v1/devices/{busy.uuid}/jobs", headers=busy.headers),
            client.get("/api/v1/jobs/handlers", headers={"Authorization": "Bearer unknown"}),
            client.get(f"/api/v1/devices/{idle.uuid}/jobs/next", headers=idle.headers),
        ] * 2
        time.sleep(2.5)  # the idle-devices listener retries every second meanwhile
    for response in answers:
        assert response.status_code == 503, (response.request.path, response.get_json())
        assert response.headers["Retry-After"].isdigit()
        assert response.get_json()["code"] == 503
    assert not [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]
    # The pool's own reconnection attempts (psycopg.pool) back off; they are not per request.
    # Ours: the outage once, and the idle-devices listener losing its connection at most once.
    ours = [r.getMessage().split(":")[0].split(" error=")[0] for r in caplog.records
            if not r.name.startswith("psycopg")]
    assert ours.count("database unavailable") == 1, ours
    assert len(ours) == len(set(ours)), ours
    assert set(ours) <= {"database unavailable", "idle devices listener lost"}, ours

    private_postgres.start()
    # The pool reconnects with a growing back-off while the database is down, so the first
    # answer after it is back may take some seconds.
    deadline = time.monotonic() + 90
    with caplog.at_level(logging.WARNING):
        while client.get("/api/v1/devices", headers=admin).status_code != 200:
            assert time.monotonic() < deadline, "the API did not recover"
            time.sleep(0.2)
    assert any("database reachable again" in r.getMessage() for r in caplog.records)
    response = client.get(f"/api/v1/devices/{busy.uuid}/jobs/next", headers=busy.headers)
    assert response.status_code == 200
    assert response.get_json()["jobId"] == str(job_id)
