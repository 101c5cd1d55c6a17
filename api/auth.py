"""Bearer-token authorization.

Admin endpoints take an admin token (viewer tokens may only read). Device endpoints take the
device's own token: a device token is valid for ``/devices/<its uuid>/...`` and nothing else.
Missing or unknown token: 401. Valid token, wrong resource or role: 403.
"""

from __future__ import annotations

import functools
import logging
import uuid
from collections.abc import Callable

from flask import current_app, g, request
from flask_smorest import abort

from dispatcher.tokens import Principal, authenticate

log = logging.getLogger(__name__)

ANONYMOUS_ADMIN = Principal(kind="admin", name="anonymous (AUTH_DISABLED)")


def current_principal() -> Principal:
    """The caller of this request (resolved once, then cached on ``g``)."""
    principal = g.get("principal")
    if principal is not None:
        return principal
    settings = current_app.config["SETTINGS"]
    if settings.auth_disabled:
        principal = ANONYMOUS_ADMIN
    else:
        token = bearer_token()
        if token is None:
            abort(401, message="Missing bearer token")
        principal = authenticate(token, settings.admin_token)
        if principal is None:
            abort(401, message="Invalid or revoked token")
    g.principal = principal
    return principal


# The portal signs in with its own session (api.portal.sessions), not a bearer token.
UNAUTHENTICATED_BLUEPRINTS = frozenset({"health", "api-docs", "api-docs-assets", "portal"})
BODY_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def authenticate_before_body() -> None:
    """Answer 401 before a request body is parsed, so no one learns anything without a token.

    Only for requests that carry a body; reads need no early check, and the poll keeps its
    single query. The principal is cached on ``g``, so the route's own check costs nothing.
    A view whose class sets ``checks_device_token`` (the device's status report) checks the
    token in the statement that does its work: here it only needs a bearer token to be there.
    """
    if (
        request.method in BODY_METHODS
        and request.url_rule is not None
        and request.blueprint not in UNAUTHENTICATED_BLUEPRINTS
    ):
        view = current_app.view_functions.get(request.endpoint)
        if getattr(getattr(view, "view_class", None), "checks_device_token", False):
            if not current_app.config["SETTINGS"].auth_disabled and bearer_token() is None:
                abort(401, message="Missing bearer token")
            return
        current_principal()


def bearer_token() -> str | None:
    """The request's bearer token, or None when it carries none."""
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def actor() -> str:
    """The name recorded in the audit trail for this request."""
    principal = current_principal()
    return f"{principal.kind}:{principal.name}"


def require(*kinds: str) -> Callable:
    """Allow principals of ``kinds``: "admin", "viewer", "device".

    A device principal is only allowed when the route's ``uuid`` argument is its own uuid;
    with AUTH_DISABLED every call is allowed.
    """

    def decorator(view: Callable) -> Callable:
        @functools.wraps(view)
        def wrapper(*args, **kwargs):
            authorize(kinds, kwargs.get("uuid"))
            return view(*args, **kwargs)

        return wrapper

    return decorator


def authorize(kinds: tuple[str, ...], device_uuid: uuid.UUID | None) -> Principal:
    """The caller, when it is one of ``kinds`` (a device only for ``device_uuid``); else the
    request ends with 401 or 403."""
    principal = current_principal()
    if principal is ANONYMOUS_ADMIN:
        return principal
    if principal.kind not in kinds:
        if principal.kind == "viewer" and "admin" in kinds:
            abort(403, message="Viewer tokens may only read")
        abort(403, message=f"A {principal.kind} token may not call this endpoint")
    if principal.kind == "device" and device_uuid != principal.device_uuid:
        abort(403, message="A device token is valid only for its own device")
    return principal


read_access = require("admin", "viewer")
write_access = require("admin")
device_access = require("device")
