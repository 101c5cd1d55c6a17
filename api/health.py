"""Liveness and readiness probes (no auth: load balancers call them)."""

from __future__ import annotations

import redis
from flask import Blueprint, current_app, jsonify

from dispatcher import db
from dispatcher.config import Settings

CHECK_TIMEOUT_S = 2.0

blp = Blueprint("health", __name__)


@blp.get("/healthz")
def healthz():
    return jsonify({"status": "ok"})


@blp.get("/readyz")
def readyz():
    checks = check_dependencies(current_app.config["SETTINGS"])
    ready = all(c["ok"] for c in checks.values())
    return jsonify({"status": "ready" if ready else "unavailable", "checks": checks}), (
        200 if ready else 503
    )


def check_dependencies(settings: Settings) -> dict[str, dict]:
    """Whether PostgreSQL and Redis answer, each with the error's type when not."""
    checks: dict[str, dict] = {}
    try:
        db.ping(CHECK_TIMEOUT_S)
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
