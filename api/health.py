"""Liveness and readiness probes (no auth: load balancers call them)."""

from __future__ import annotations

from flask import Blueprint, current_app, jsonify

from dispatcher import health

blp = Blueprint("health", __name__)


@blp.get("/healthz")
def healthz():
    return jsonify({"status": "ok"})


@blp.get("/readyz")
def readyz():
    checks = health.check_dependencies(current_app.config["SETTINGS"])
    ready = all(c["ok"] for c in checks.values())
    return jsonify({"status": "ready" if ready else "unavailable", "checks": checks}), (
        200 if ready else 503
    )
