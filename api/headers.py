"""Headers every response carries, whatever produced it."""

from __future__ import annotations

from flask import Response

# Pages that set their own policy (the portal) keep it; everything else may not be framed.
DEFAULT_CSP = "frame-ancestors 'none'"
# Returned with a view's answer that carries a token: no cache or proxy may keep it.
NO_STORE = {"Cache-Control": "no-store"}


def add_security_headers(response: Response) -> Response:
    """nosniff and no framing on every response; nothing that carries a token is cached."""
    response.headers["X-Content-Type-Options"] = "nosniff"
    if "Content-Security-Policy" not in response.headers:
        response.headers["Content-Security-Policy"] = DEFAULT_CSP
    return response
