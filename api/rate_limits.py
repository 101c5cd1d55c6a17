"""429 with Retry-After for requests over a rate limit (``dispatcher.rate_limits``); every 401
counts as a failed authentication of the client's address."""

from __future__ import annotations

from flask import Flask, Response, jsonify, request

from api.errors import error_body
from dispatcher.config import Settings
from dispatcher.rate_limits import RateLimits

UNLIMITED_BLUEPRINTS = frozenset({"health"})


def install_rate_limits(app: Flask, settings: Settings) -> None:
    """Check the limits before anything else a request does (authentication included)."""
    limits = RateLimits(settings)
    app.extensions["rate_limits"] = limits

    def refuse_over_limit() -> Response | None:
        if request.blueprint in UNLIMITED_BLUEPRINTS:
            return None
        uuid = (request.view_args or {}).get("uuid")
        refusal = limits.check(request.remote_addr, str(uuid) if uuid is not None else None)
        if refusal is None:
            return None
        response = jsonify(error_body(429, refusal.message))
        response.status_code = 429
        response.headers["Retry-After"] = str(refusal.retry_after_s)
        return response

    def count_failed_authentication(response: Response) -> Response:
        if response.status_code == 401:
            limits.note_failed_authentication(request.remote_addr)
        return response

    app.before_request(refuse_over_limit)
    app.after_request(count_failed_authentication)
