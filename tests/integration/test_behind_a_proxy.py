"""The API as deployed behind a real nginx on the same host, with clients on several addresses:
rate limits, AUTH_DISABLED, /metrics and the OpenAPI document.

nginx connects to the API from its own loopback address (``PROXY_ADDRESS``), the only one in
``FORWARDED_ALLOW_IPS``, and appends each caller's address to ``X-Forwarded-For``; the test's
clients call from 127.0.0.3, 127.0.0.4, … as devices and operators on several networks would.
One gunicorn worker, so every count is this process's and exact.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import pytest
from job_rows import next_url, register_fleet
from reverse_proxy import PROXY_ADDRESS, ReverseProxy, call
from suite_constants import TEST_ADMIN_TOKEN

ADMIN = {"Authorization": f"Bearer {TEST_ADMIN_TOKEN}"}
BAD = {"Authorization": "Bearer a-stale-or-guessed-token"}
FAILURES_PER_MIN = 5
DEVICE_PER_MIN = 5


@pytest.fixture
def settings(settings):
    return replace(settings, forwarded_allow_ips=PROXY_ADDRESS,
                   rate_limit_auth_failures_per_min=FAILURES_PER_MIN,
                   rate_limit_device_per_min=DEVICE_PER_MIN)


@contextmanager
def proxied_api(settings, server_processes, run_dir: Path) -> Iterator[tuple[int, int]]:
    """The API under gunicorn (one worker) behind nginx: (the API's port, the proxy's)."""
    api = server_processes.start_api(settings, workers=1)
    proxy = ReverseProxy(run_dir / "nginx", api.port)
    try:
        yield api.port, proxy.port
    finally:
        proxy.stop()


@pytest.fixture
def stack(app, settings, server_processes, tmp_path):
    with proxied_api(settings, server_processes, tmp_path) as ports:
        yield ports


def statuses(port: int, path: str, headers: dict, source: str, times: int,
             method: str = "GET") -> list[int]:
    return [call(port, method, path, headers, source)[0] for _ in range(times)]


def test_failed_authentications_count_per_client_behind_the_proxy(stack):
    _, proxy = stack
    device = register_fleet(1)[0]
    failing = statuses(proxy, "/api/v1/devices", BAD, "127.0.0.3", FAILURES_PER_MIN + 2)
    assert failing[-1] == 429
    status, headers, body = call(proxy, "GET", "/api/v1/devices", BAD, "127.0.0.3")
    assert status == 429 and 1 <= int(headers["retry-after"]) <= 60
    # Another client of the same proxy is not locked out by the first one's failures …
    assert call(proxy, "GET", "/api/v1/devices", BAD, "127.0.0.4")[0] == 401
    assert call(proxy, "GET", "/api/v1/devices", ADMIN, "127.0.0.4")[0] == 200
    # … and a valid credential from the failing address itself is served.
    assert call(proxy, "GET", "/api/v1/devices", ADMIN, "127.0.0.3")[0] == 200
    assert call(proxy, "GET", next_url(device), device.headers, "127.0.0.3")[0] == 200


def test_a_client_cannot_choose_its_address_with_x_forwarded_for(stack):
    api, proxy = stack
    # Through the proxy: nginx appends the real caller, whatever the caller wrote before it.
    for i in range(FAILURES_PER_MIN + 2):
        spoofed = {**BAD, "X-Forwarded-For": f"10.0.{i}.1"}
        last = call(proxy, "GET", "/api/v1/devices", spoofed, "127.0.0.3")[0]
    assert last == 429
    # Directly: the header of a caller that is not a trusted proxy is ignored.
    for _ in range(FAILURES_PER_MIN + 2):
        spoofed = {**BAD, "X-Forwarded-For": "127.0.0.6"}
        last = call(api, "GET", "/api/v1/devices", spoofed, "127.0.0.5")[0]
    assert last == 429
    assert call(proxy, "GET", "/api/v1/devices", BAD, "127.0.0.6")[0] == 401
    assert call(proxy, "GET", "/api/v1/devices", BAD, "127.0.0.4")[0] == 401


def test_an_outsider_cannot_spend_a_devices_allowance(stack):
    _, proxy = stack
    device = register_fleet(1)[0]
    for _ in range(3 * DEVICE_PER_MIN):
        call(proxy, "GET", next_url(device), {}, "127.0.0.3")
        call(proxy, "OPTIONS", next_url(device), {}, "127.0.0.3")
        call(proxy, "GET", next_url(device), BAD, "127.0.0.5")
    polls = statuses(proxy, next_url(device), device.headers, "127.0.0.4", DEVICE_PER_MIN + 1)
    # The device's own requests are what its allowance counts.
    assert polls == [200] * DEVICE_PER_MIN + [429]


def test_auth_disabled_serves_no_one_through_a_proxy_on_the_same_host(
        app, settings, server_processes, tmp_path):
    with proxied_api(replace(settings, auth_disabled=True), server_processes,
                     tmp_path) as (api, proxy):
        status, _, body = call(proxy, "GET", "/api/v1/devices", {}, "127.0.0.3")
        assert status == 403, body
        assert "AUTH_DISABLED" in body["message"]
        assert call(proxy, "GET", "/portal/executions", {}, "127.0.0.3")[0] == 403
        # A client on this host calling the API directly is the developer it is meant for.
        assert call(api, "GET", "/api/v1/devices", {}, "127.0.0.1")[0] == 200


def test_metrics_and_api_docs_are_not_served_to_the_network_by_default(
        app, settings, server_processes, viewer_headers, tmp_path):
    with proxied_api(settings, server_processes, tmp_path) as (api, proxy):
        status, _, body = call(proxy, "GET", "/metrics", {}, "127.0.0.3")
        assert status == 403 and "METRICS_TOKEN" in body["message"]
        assert call(proxy, "GET", "/api/v1/openapi.json", {}, "127.0.0.3")[0] == 401
        assert call(proxy, "GET", "/api/v1/docs", {}, "127.0.0.3")[0] == 401
        status, _, spec = call(proxy, "GET", "/api/v1/openapi.json", viewer_headers,
                               "127.0.0.3")
        assert status == 200 and spec["info"]["title"] == "device-jobs"
        # On the API's own host, without a proxy between, both answer.
        assert call(api, "GET", "/metrics", {}, "127.0.0.1")[0] == 200
        assert call(api, "GET", "/api/v1/openapi.json", {}, "127.0.0.1")[0] == 200


def test_metrics_token_and_public_docs_open_them_to_the_network(
        app, settings, server_processes, tmp_path):
    token = "scrape-" + "s" * 40
    opened = replace(settings, metrics_token=token, api_docs_public=True)
    with proxied_api(opened, server_processes, tmp_path) as (_, proxy):
        assert call(proxy, "GET", "/metrics", {}, "127.0.0.3")[0] == 401
        scraped = call(proxy, "GET", "/metrics", {"Authorization": f"Bearer {token}"},
                       "127.0.0.3")
        assert scraped[0] == 200 and "device_jobs_http_requests_total" in scraped[2]
        assert call(proxy, "GET", "/api/v1/openapi.json", {}, "127.0.0.3")[0] == 200
