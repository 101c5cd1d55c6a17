"""A device this process knows idle is answered below Flask (api.idle_polls): no routing, no
request context, no hooks, and yet the same answer, the same headers, the same rate limits, the
same metrics and the same last_seen_at; a refused token and Cache-Control: no-cache still go to
the app."""

from __future__ import annotations

from dataclasses import replace

import pytest
from job_rows import next_url, register_fleet
from processes import wait_until
from test_idle_device_polls import known  # noqa: F401 - the fixture: idle devices loaded

from dispatcher import db
from dispatcher.poll import idle, sightings

NO_JOB = "No pending jobs"
# Every test but the last (which makes its own app) runs with the idle devices loaded.
known_idle_devices = pytest.mark.usefixtures("known")


@pytest.fixture
def flask_requests(app) -> list[str]:
    """The requests that reached Flask's hooks (their paths)."""
    seen: list[str] = []

    @app.before_request
    def note() -> None:
        from flask import request

        seen.append(request.path)

    return seen


def poll(client, device, **headers):
    return client.get(next_url(device), headers={**device.headers, **headers})


@known_idle_devices
def test_a_known_idle_device_is_answered_below_flask_with_the_apps_answer(
        client, flask_requests):
    [pi] = register_fleet(1)
    from_app = poll(client, pi)  # learnt idle by the app's one statement
    assert len(flask_requests) == 1
    below = poll(client, pi)
    assert len(flask_requests) == 1, "the poll of a known idle device reached Flask"
    assert below.status_code == from_app.status_code == 200
    assert below.get_data() == from_app.get_data()
    assert below.get_json()["message"] == NO_JOB
    assert sorted(below.headers.items()) == sorted(from_app.headers.items())


@known_idle_devices
def test_no_cache_a_refused_token_and_an_unknown_device_go_to_the_app(
        client, flask_requests):
    pi, other = register_fleet(2)
    poll(client, pi)
    flask_requests.clear()
    assert poll(client, pi, **{"Cache-Control": "no-cache"}).status_code == 200
    assert poll(client, pi, Authorization=f"Bearer {other.token}").status_code == 403
    assert poll(client, pi, Authorization="Bearer nope").status_code == 401
    assert poll(client, other).status_code == 200  # not known yet: the app answers
    assert len(flask_requests) == 4
    flask_requests.clear()
    assert poll(client, other).status_code == 200
    assert flask_requests == []


@known_idle_devices
def test_a_poll_below_flask_counts_in_metrics_and_last_seen(client, flask_requests):
    [pi] = register_fleet(1)
    poll(client, pi)
    sightings.of_this_process.flush()
    with db.connect() as c:
        c.conn.execute("UPDATE devices SET last_seen_at = NULL WHERE uuid = %s", (pi.uuid,))

    def polls_counted() -> float:
        text = client.get("/metrics").get_data(as_text=True)
        line = next(x for x in text.splitlines()
                    if x.startswith("device_jobs_http_requests_total{")
                    and 'endpoint="/api/v1/devices/<uuid:uuid>/jobs/next"' in x
                    and 'status="200"' in x)
        return float(line.rsplit(" ", 1)[1])

    before = polls_counted()
    flask_requests.clear()
    for _ in range(3):
        assert poll(client, pi).status_code == 200
    assert [p for p in flask_requests if p != "/metrics"] == []
    assert polls_counted() == before + 3
    sightings.of_this_process.flush()
    with db.connect() as c:
        seen = c.conn.execute("SELECT last_seen_at IS NOT NULL AS seen FROM devices"
                              " WHERE uuid = %s", (pi.uuid,)).fetchone()["seen"]
    assert seen


def test_a_device_over_its_allowance_is_refused_below_flask_as_the_app_refuses(
        settings, database_url):
    seen: list[str] = []
    from api.app import create_app

    app = create_app(replace(settings, rate_limit_device_per_min=3))
    app.config["TESTING"] = True
    app.before_request(lambda: seen.append("flask") and None)
    client = app.test_client()
    listener = idle.start(database_url)
    try:
        wait_until(lambda: listener.enabled, 10, "the idle devices loaded")
        pi, other = register_fleet(2)
        answers = [poll(client, pi).status_code for _ in range(4)]
        assert answers == [200, 200, 200, 429]
        assert seen == ["flask"]  # only the first poll, which learnt the device idle
        refused_below = poll(client, pi)
        refused_by_app = poll(client, pi, **{"Cache-Control": "no-cache"})
        assert refused_below.status_code == refused_by_app.status_code == 429
        assert refused_below.get_data() == refused_by_app.get_data()
        assert refused_below.get_json()["message"] == "Too many requests for this device"
        assert sorted(refused_below.headers.items()) == sorted(refused_by_app.headers.items())
        # Another device's token on this device's URL does not use up its allowance.
        assert poll(client, other).status_code == 200
    finally:
        idle.stop()
