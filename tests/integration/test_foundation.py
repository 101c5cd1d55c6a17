"""Migrations, health probes, authentication and the error shape."""

from __future__ import annotations

import threading

import psycopg

from dispatcher.migrate import available_migrations, migrate


def _schema(url: str) -> list[tuple]:
    with psycopg.connect(url) as conn:
        return conn.execute(
            "SELECT table_name, column_name, data_type FROM information_schema.columns"
            " WHERE table_schema = 'public' ORDER BY 1, 2"
        ).fetchall()


def test_migrate_twice_is_a_no_op(database_url):
    before = _schema(database_url)
    assert migrate(database_url) == []
    assert migrate(database_url) == []
    assert _schema(database_url) == before


def test_two_concurrent_migrations_from_empty_leave_one_schema(database_url, template_database):
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("DROP SCHEMA public CASCADE")
        conn.execute("CREATE SCHEMA public")
    results: list = []
    errors: list = []

    def run() -> None:
        try:
            results.append(migrate(database_url))
        except Exception as exc:  # collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    every_version = [m.version for m in available_migrations()]
    assert sorted(results, key=len) == [[], every_version]
    template_url = psycopg.conninfo.make_conninfo(database_url, dbname=template_database)
    assert _schema(database_url) == _schema(template_url)


def test_healthz_and_readyz(client):
    assert client.get("/healthz").get_json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200
    assert ready.get_json()["checks"]["postgres"]["ok"] is True
    assert ready.get_json()["checks"]["redis"]["ok"] is True


def test_readyz_fails_when_postgres_is_unreachable(settings):
    from dataclasses import replace

    from api.app import create_app

    bad = replace(settings, database_url="postgresql://postgres@127.0.0.1:1/nothing")
    response = create_app(bad).test_client().get("/readyz")
    assert response.status_code == 503
    assert response.get_json()["checks"]["postgres"]["ok"] is False


def test_openapi_document_and_swagger_ui_are_served(client):
    spec = client.get("/api/v1/openapi.json")
    assert spec.status_code == 200
    assert spec.get_json()["openapi"].startswith("3.")
    page = client.get("/api/v1/docs")
    assert page.status_code == 200


def test_swagger_ui_loads_its_scripts_and_styles_from_the_api_not_a_cdn(client):
    import re
    from urllib.parse import urljoin

    page = client.get("/api/v1/docs").get_data(as_text=True)
    assets = re.findall(r'(?:src|href)="([^"]+)"', page)
    assert {a.rsplit("/", 1)[-1] for a in assets} >= {
        "swagger-ui.css", "swagger-ui-bundle.js", "swagger-ui-standalone-preset.js"}
    for asset in assets:
        url = urljoin("http://localhost/api/v1/docs", asset)
        assert url.startswith("http://localhost/api/v1/"), asset  # no outside host
        response = client.get(url.removeprefix("http://localhost"))  # no token: a browser
        assert response.status_code == 200, asset
        assert len(response.data) > 1000, asset
    assert client.get("/api/v1/swagger-ui/../../app.py").status_code == 404


def test_unknown_route_uses_the_error_shape(client, admin_headers):
    response = client.get("/api/v1/nothing-here", headers=admin_headers)
    assert response.status_code == 404
    body = response.get_json()
    assert body["code"] == 404
    assert body["status"] == "Not Found"
    assert "message" in body and "errors" in body
