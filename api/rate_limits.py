"""429 with Retry-After for requests over a rate limit (``api.rate_counts``).

Before a request: its client address (the one ``api.proxies`` found behind trusted proxies) is
counted, and the request is refused when that address, or the device its URL names, is over
its allowance. After it: a request authenticated as a device counts against that device's
allowance, and a 401 counts as a failed authentication of the address; past that limit the
401 becomes a 429 (a valid token from the same address is still served).
"""

from __future__ import annotations

import json

from flask import Flask, Response, jsonify, request

from api.auth import authenticated_device
from api.errors import error_body
from api.rate_counts import RateLimits, Refusal
from dispatcher.config import Settings

UNLIMITED_BLUEPRINTS = frozenset({"health"})


def install_rate_limits(app: Flask, settings: Settings) -> None:
    """Check the limits before anything else a request does (authentication included)."""
    limits = RateLimits(settings)
    app.extensions["rate_limits"] = limits

    def refuse_over_limit() -> Response | None:
        if request.blueprint in UNLIMITED_BLUEPRINTS:
            return None
        uuid = (request.view_args or {}).get("uuid")
        refusal = limits.admit(request.remote_addr, str(uuid) if uuid is not None else None)
        return None if refusal is None else _too_many(refusal)

    def count_after(response: Response) -> Response:
        device = authenticated_device()
        if device is not None:
            limits.note_device_request(str(device))
        if response.status_code == 401 and limits.note_failed_authentication(
                request.remote_addr):
            # The answer keeps the headers other hooks set (and a portal page its page).
            response.status_code = 429
            response.headers["Retry-After"] = str(limits.retry_after_s())
            if response.mimetype == "application/json":
                response.set_data(json.dumps(error_body(
                    429, "Too many failed authentications from this address")))
        return response

    app.before_request(refuse_over_limit)
    app.after_request(count_after)


def _too_many(refusal: Refusal) -> Response:
    response = jsonify(error_body(429, refusal.message))
    response.status_code = 429
    response.headers["Retry-After"] = str(refusal.retry_after_s)
    return response
