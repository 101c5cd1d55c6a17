"""/metrics: request counts by route, status counts from PostgreSQL, and readiness."""

from __future__ import annotations

from dataclasses import replace

from job_rows import insert_job, next_url, register_fleet
from prometheus_client.parser import text_string_to_metric_families


def scrape(client) -> dict[tuple[str, tuple], float]:
    """Every sample of a /metrics answer, keyed by (name, sorted labels)."""
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.content_type.startswith("text/plain")
    samples = {}
    for family in text_string_to_metric_families(response.get_data(as_text=True)):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def requests_total(samples, endpoint: str, status: str) -> float:
    key = ("device_jobs_http_requests_total",
           (("endpoint", endpoint), ("method", "GET"), ("status", status)))
    return samples.get(key, 0.0)


def test_requests_are_counted_by_url_rule_not_raw_path(client, admin_headers):
    before = scrape(client)
    client.get("/healthz")
    client.get("/healthz")
    client.get("/api/v1/no-such-route-1", headers=admin_headers)
    client.get("/api/v1/no-such-route-2", headers=admin_headers)
    after = scrape(client)
    for endpoint, status in (("/healthz", "200"), ("unmatched", "404")):
        moved = requests_total(after, endpoint, status) - requests_total(before, endpoint, status)
        assert moved == 2, endpoint
    assert not any("no-such-route" in str(labels) for _, labels in after)
    latency = ("device_jobs_http_request_duration_seconds_count",
               (("endpoint", "/healthz"), ("method", "GET")))
    assert after[latency] - before.get(latency, 0.0) == 2


def test_status_counts_come_from_the_database(client):
    samples = scrape(client)
    assert samples[("device_jobs_database_scrape_ok", ())] == 1
    assert samples[("device_jobs_executions", (("status", "QUEUED"),))] == 0
    assert samples[("device_jobs_device_executions", (("status", "SUCCEEDED"),))] == 0


def test_metrics_answer_when_postgres_is_down(settings):
    from api.app import create_app

    bad = replace(settings, database_url="postgresql://postgres@127.0.0.1:1/nothing",
                  db_pool_min_size=0)
    samples = scrape(create_app(bad).test_client())
    assert samples[("device_jobs_database_scrape_ok", ())] == 0
    assert not any(name == "device_jobs_executions" for name, _ in samples)


def test_readyz_fails_when_redis_is_unreachable(settings):
    from api.app import create_app

    bad = replace(settings, redis_url="redis://127.0.0.1:1/0")
    response = create_app(bad).test_client().get("/readyz")
    assert response.status_code == 503
    body = response.get_json()
    assert body["status"] == "unavailable"
    assert body["checks"]["redis"]["ok"] is False
    assert body["checks"]["postgres"]["ok"] is True


def polls_total(samples, result: str) -> float:
    return samples.get(("device_jobs_polls_total", (("result", result),)), 0.0)


def test_polls_are_counted_by_whether_a_job_was_handed_out(client):
    busy, idle = register_fleet(2)
    insert_job([busy])
    before = scrape(client)
    assert "jobId" in client.get(next_url(busy), headers=busy.headers).get_json()
    assert "jobId" not in client.get(next_url(idle), headers=idle.headers).get_json()
    assert client.get(next_url(idle), headers=busy.headers).status_code == 403
    after = scrape(client)
    assert polls_total(after, "job") - polls_total(before, "job") == 1
    assert polls_total(after, "no_job") - polls_total(before, "no_job") == 1


def test_with_a_metrics_token_a_scrape_must_bear_it(settings):
    from api.app import create_app

    client = create_app(replace(settings, metrics_token="scrape-secret")).test_client()
    for headers, message in (({}, "Missing bearer token"),
                             ({"Authorization": "Bearer wrong"}, "Invalid token"),
                             ({"Authorization": "Basic scrape-secret"}, "Missing bearer token")):
        response = client.get("/metrics", headers=headers)
        assert response.status_code == 401
        assert response.get_json()["message"].startswith(message)
    response = client.get("/metrics", headers={"Authorization": "Bearer scrape-secret"})
    assert response.status_code == 200
    assert b"device_jobs_http_requests_total" in response.data
