"""CORS for external frontends: pages on the origins in ``CORS_ALLOWED_ORIGINS`` may call the
API (``/api/v1/...``) with a bearer token.

Credentials are never allowed cross-origin (no ``Access-Control-Allow-Credentials``): a page on
another origin authenticates with its own bearer token, never with the portal's cookie. A
preflight from an allowed origin is answered here, before routing and authentication (a
preflight carries no token); one from any other origin gets no CORS headers, so the browser
refuses the call.
"""

from __future__ import annotations

from flask import Flask, Response, request

API_PREFIX = "/api/v1/"
ALLOWED_METHODS = "GET, POST, PUT, PATCH, DELETE"
ALLOWED_HEADERS = "Authorization, Content-Type, Cache-Control"
PREFLIGHT_MAX_AGE_S = "600"


def allowed_origins(setting: str) -> frozenset[str]:
    """The origins of a ``CORS_ALLOWED_ORIGINS`` value, without trailing slashes."""
    return frozenset(origin.strip().rstrip("/") for origin in setting.split(",") if origin.strip())


def install_cors(app: Flask, setting: str) -> None:
    origins = allowed_origins(setting)
    if not origins:
        return

    def allowed_origin() -> str | None:
        origin = request.headers.get("Origin")
        if origin in origins and request.path.startswith(API_PREFIX):
            return origin
        return None

    def answer_preflight() -> Response | None:
        origin = allowed_origin()
        if (request.method != "OPTIONS" or origin is None
                or "Access-Control-Request-Method" not in request.headers):
            return None
        response = app.response_class(status=204)
        response.headers["Access-Control-Allow-Methods"] = ALLOWED_METHODS
        response.headers["Access-Control-Allow-Headers"] = ALLOWED_HEADERS
        response.headers["Access-Control-Max-Age"] = PREFLIGHT_MAX_AGE_S
        return response

    def add_cors_headers(response: Response) -> Response:
        if request.path.startswith(API_PREFIX):
            response.vary.add("Origin")
        origin = allowed_origin()
        if origin is not None:
            response.headers["Access-Control-Allow-Origin"] = origin
        return response

    # Before authentication: a preflight carries no token.
    app.before_request_funcs.setdefault(None, []).insert(0, answer_preflight)
    app.after_request(add_cors_headers)
