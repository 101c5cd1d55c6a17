"""Bearer-token authorization.

Admin endpoints take an admin token (viewer tokens may only read). Device endpoints take the
device's own token: a device token is valid for ``/devices/<its uuid>/...`` and nothing else.
Missing or unknown token: 401. Valid token, wrong resource or role: 403.

Each view says how it is guarded with a decorator, the outermost one, so that no one learns
anything about validation (or costs the server a 1 MiB parse) without a token that may call it:
``require`` (``read_access``, ``write_access``, ``device_access``) checks the caller before the
view's arguments are parsed. The device's poll and status report check the token in the one
statement that does their work, which answers a verdict (``dispatcher.fleet.tokens.TokenVerdict``)
that ``admit_device`` turns into 401 or 403; the report, whose body is read before that
statement, is also guarded by ``device_token_verified``.
"""

from __future__ import annotations

import functools
import logging
import uuid
from collections.abc import Callable

from flask import current_app, g, request

from api.errors import abort
from api.proxies import was_forwarded
from dispatcher.config import is_loopback
from dispatcher.fleet.tokens import (
    Principal,
    TokenVerdict,
    authenticate,
    authenticate_bootstrap,
    hash_token,
    verify_device_token,
)

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


def note_authenticated_device(device_uuid: uuid.UUID) -> None:
    """Record that this request's token is ``device_uuid``'s own (checked by a view's query)."""
    g.authenticated_device = device_uuid


def authenticated_device() -> uuid.UUID | None:
    """The device this request was authenticated as, if it was one."""
    device = g.get("authenticated_device")
    if device is not None:
        return device
    principal = g.get("principal")
    return principal.device_uuid if principal is not None else None


def is_direct_loopback_caller() -> bool:
    """Whether this request comes from this host itself, not relayed by a proxy (a unix socket
    has no peer address: only this host can reach it)."""
    address = request.remote_addr or ""
    return not was_forwarded(request.environ) and (not address or is_loopback(address))


def refuse_remote_callers_without_auth() -> None:
    """With AUTH_DISABLED, serve only direct loopback clients: a request relayed by a proxy
    (even one on this host, whose peer address is loopback) or from another address is 403.
    Binding a loopback address alone would let a proxy on the same host publish an API where
    every caller is an admin."""
    if not current_app.config["SETTINGS"].auth_disabled or request.blueprint == "health":
        return
    if not is_direct_loopback_caller():
        abort(403, message="AUTH_DISABLED serves only direct loopback clients; this request "
                           "came through a proxy or from another address")


def device_token_verified(view: Callable) -> Callable:
    """Guard a device endpoint whose own statement checks the token again (the status report):
    before its body is read, the token must be one this process has verified for the device
    (``dispatcher.fleet.tokens.verify_device_token``: no query for a known one), else 401 or 403."""

    @functools.wraps(view)
    def wrapper(*args, **kwargs):
        token_hash = device_token_hash()
        if token_hash is not None:
            admit_device(verify_device_token(kwargs["uuid"], token_hash), kwargs["uuid"])
        return view(*args, **kwargs)

    return wrapper


def device_token_hash() -> bytes | None:
    """The hash of the request's bearer token for a device endpoint's statement to check; None
    with AUTH_DISABLED (no check). No token: 401."""
    if current_app.config["SETTINGS"].auth_disabled:
        return None
    token = bearer_token()
    if token is None:
        abort(401, message="Missing bearer token")
    return hash_token(token)


def admit_device(verdict: TokenVerdict, device_uuid: uuid.UUID) -> None:
    """Answer 401 or 403, as ``authorize`` would, when a device endpoint's statement did not
    accept the caller's token; ``verdict.token_kind`` says what the token is instead."""
    if verdict.token_ok:
        note_authenticated_device(device_uuid)
        return
    if current_app.config["SETTINGS"].auth_disabled:
        return
    token = bearer_token() or ""
    principal = authenticate_bootstrap(token, current_app.config["SETTINGS"].admin_token)
    if principal is None and verdict.token_kind is not None:
        principal = Principal(kind=verdict.token_kind, name="")
    if principal is None:
        abort(401, message="Invalid or revoked token")
    _check(principal, ("device",), device_uuid)


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
    """Allow principals of ``kinds``: "admin", "viewer", "device". The outermost decorator of
    a view, so that the caller is checked before anything is parsed.

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
    _check(principal, kinds, device_uuid)
    return principal


def _check(principal: Principal, kinds: tuple[str, ...], device_uuid: uuid.UUID | None) -> None:
    if principal is ANONYMOUS_ADMIN:
        return
    if principal.kind not in kinds:
        if principal.kind == "viewer" and "admin" in kinds:
            abort(403, message="Viewer tokens may only read")
        abort(403, message=f"A {principal.kind} token may not call this endpoint")
    if principal.kind == "device" and device_uuid != principal.device_uuid:
        abort(403, message="A device token is valid only for its own device")


read_access = require("admin", "viewer")
write_access = require("admin")
device_access = require("device")


def authorize_api_docs() -> None:
    """The OpenAPI document and Swagger UI: for anyone with API_DOCS_PUBLIC, else for callers
    on this host and admin or viewer tokens (the API's shape is no secret, but there is no
    reason to hand it to every scanner). A hook before every request of the app."""
    if request.blueprint != "api-docs":
        return
    if current_app.config["SETTINGS"].api_docs_public or is_direct_loopback_caller():
        return
    authorize(("admin", "viewer"), None)
