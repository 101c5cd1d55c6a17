"""Rate limits per device, per client address, and for failed authentications: 429 with
Retry-After, counted in the real Redis so every API process shares them."""

from __future__ import annotations

from dataclasses import replace

import pytest
import redis
from job_rows import next_url, register_fleet

from api.app import create_app
from api.rate_counts import RateLimits
from dispatcher.config import Settings


def limited_client(settings: Settings, **limits: int):
    app = create_app(replace(settings, **limits))
    app.config["TESTING"] = True
    return app, app.test_client()


def test_a_device_over_its_limit_gets_429_with_retry_after(settings):
    app, client = limited_client(settings, rate_limit_device_per_min=5)
    busy, quiet = register_fleet(2)
    answers = [client.get(next_url(busy), headers=busy.headers).status_code for _ in range(7)]
    assert answers == [200] * 5 + [429] * 2
    refused = client.get(next_url(busy), headers=busy.headers)
    assert 1 <= int(refused.headers["Retry-After"]) <= 60
    assert refused.get_json()["code"] == 429
    assert client.get(next_url(quiet), headers=quiet.headers).status_code == 200
    assert client.get("/healthz").status_code == 200


def test_an_address_over_its_limit_gets_429(settings, admin_headers):
    _, client = limited_client(settings, rate_limit_address_per_min=3)
    answers = [client.get("/api/v1/devices", headers=admin_headers).status_code
               for _ in range(4)]
    assert answers == [200, 200, 200, 429]
    other = client.get("/api/v1/devices", headers=admin_headers,
                       environ_base={"REMOTE_ADDR": "10.1.2.3"})
    assert other.status_code == 200


def test_failed_authentications_past_the_limit_answer_429_but_valid_tokens_pass(
        settings, admin_headers):
    _, client = limited_client(settings, rate_limit_auth_failures_per_min=3)
    device = register_fleet(1)[0]
    bad = {"Authorization": "Bearer guess"}
    answers = [client.get("/api/v1/devices", headers=bad).status_code for _ in range(5)]
    assert answers == [401, 401, 401, 429, 429]
    refused = client.get("/api/v1/devices")
    assert refused.status_code == 429
    assert 1 <= int(refused.headers["Retry-After"]) <= 60
    assert refused.get_json()["message"] == "Too many failed authentications from this address"
    # Valid credentials from that same address are still served.
    assert client.get("/api/v1/devices", headers=admin_headers).status_code == 200
    assert client.get(next_url(device), headers=device.headers).status_code == 200
    assert client.get("/api/v1/devices", headers=bad,
                      environ_base={"REMOTE_ADDR": "10.9.9.9"}).status_code == 401


def test_processes_share_their_counts_through_redis(settings):
    limited = replace(settings, rate_limit_device_per_min=10)
    first, second = RateLimits(limited), RateLimits(limited)
    for _ in range(6):
        assert first.admit("10.0.0.1", "device-a") is None
        first.note_device_request("device-a")
    first.flush()
    for _ in range(4):
        assert second.admit("10.0.0.2", "device-a") is None
        second.note_device_request("device-a")
    second.flush()
    assert second.admit("10.0.0.2", "device-a") is not None
    keys = redis.Redis.from_url(settings.redis_url).keys(f"{settings.celery_key_prefix}ratelimit:*")
    assert keys


def test_redis_down_falls_back_to_counting_in_the_process(settings, caplog):
    limits = RateLimits(replace(settings, redis_url="redis://127.0.0.1:1/0",
                                rate_limit_device_per_min=3))
    for _ in range(3):
        assert limits.admit("10.0.0.1", "d") is None
        limits.note_device_request("d")
    limits.flush()
    assert limits.admit("10.0.0.1", "d") is not None
    assert "Redis unavailable" in caplog.text


@pytest.mark.parametrize("field", ["rate_limit_device_per_min", "rate_limit_address_per_min",
                                   "rate_limit_auth_failures_per_min"])
def test_the_defaults_never_limit_a_100k_fleet_polling_every_30s(field):
    per_device, from_one_nat = 2 * 3, 100_000 * 2 * 3  # polls and a few reports a minute
    limit = getattr(Settings(), field)
    assert limit == 0 or limit >= {"rate_limit_device_per_min": per_device,
                                   "rate_limit_address_per_min": from_one_nat,
                                   "rate_limit_auth_failures_per_min": 100}[field]


def test_anonymous_requests_naming_a_device_do_not_spend_its_allowance(settings):
    app, client = limited_client(settings, rate_limit_device_per_min=5,
                                 rate_limit_auth_failures_per_min=0)
    device = register_fleet(1)[0]
    bad = {"Authorization": "Bearer not-this-devices-token"}
    for _ in range(10):
        client.get(next_url(device))
        client.get(next_url(device), headers=bad)
        client.options(next_url(device))
    answers = [client.get(next_url(device), headers=device.headers).status_code
               for _ in range(6)]
    assert answers == [200] * 5 + [429]


def test_random_uuids_make_no_rate_limit_keys(settings):
    import uuid

    app, client = limited_client(settings, rate_limit_auth_failures_per_min=0)
    for _ in range(50):
        client.get(f"/api/v1/devices/{uuid.uuid4()}/jobs/next")
        client.options(f"/api/v1/devices/{uuid.uuid4()}/jobs/next")
    limits = app.extensions["rate_limits"]
    limits.flush()
    keys = redis.Redis.from_url(settings.redis_url).keys(f"{settings.celery_key_prefix}ratelimit:*")
    assert [key for key in keys if b":device:" in key] == []
    assert len(keys) == 1  # the one client address


def test_client_addresses_counted_per_window_are_bounded(settings, monkeypatch):
    monkeypatch.setattr("api.rate_counts.MAX_ADDRESSES", 3)
    limits = RateLimits(replace(settings, rate_limit_address_per_min=1))
    for i in range(6):
        assert limits.admit(f"10.0.0.{i}", None) is None
        limits.note_failed_authentication(f"10.0.0.{i}")
    # Addresses already counted keep being counted.
    assert limits.admit("10.0.0.0", None) is not None
    limits.flush()
    keys = redis.Redis.from_url(settings.redis_url).keys(f"{settings.celery_key_prefix}ratelimit:*")
    assert len(keys) == 6  # three addresses, each with its requests and its failures
