"""Reachability of the services the API depends on."""

from __future__ import annotations

import redis

from dispatcher import db
from dispatcher.config import Settings

CHECK_TIMEOUT_S = 2.0


def check_dependencies(settings: Settings | None = None) -> dict[str, dict]:
    settings = settings or Settings.from_env()
    checks: dict[str, dict] = {}
    try:
        with db.pool().connection(timeout=CHECK_TIMEOUT_S) as conn:
            conn.execute(db.QUERIES["ping"])
        checks["postgres"] = {"ok": True}
    except Exception as exc:  # any failure means not ready
        checks["postgres"] = {"ok": False, "error": type(exc).__name__}
    try:
        client = redis.Redis.from_url(
            settings.redis_url, socket_timeout=CHECK_TIMEOUT_S,
            socket_connect_timeout=CHECK_TIMEOUT_S,
        )
        client.ping()
        client.close()
        checks["redis"] = {"ok": True}
    except Exception as exc:
        checks["redis"] = {"ok": False, "error": type(exc).__name__}
    return checks
