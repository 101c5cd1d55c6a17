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

from api.errors import abort
from dispatcher.fleet.tokens import Principal, authenticate, hash_token, is_device_token

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
UNAUTHENTICATED_BLUEPRINTS = frozenset({"health", "api-docs", "api-docs-assets", "portal",
                                        "device-enroll", "agent-package"})
BODY_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


class DeviceTokensSeen:
    """Hashes of device tokens this process has seen accepted, with their device.

    Lets the status report refuse an unknown token before its body is parsed without a query
    of its own on the hot path: the device's polls (and earlier reports) have put its token
    here. An entry may outlive a rotated token; that only lets a body be parsed, since the
    report's statement checks the token again. Bounded: when full it starts over. Any thread
    may use it; dict operations are atomic.
    """

    def __init__(self, capacity: int = 200_000) -> None:
        self.capacity = capacity
        self._devices: dict[bytes, uuid.UUID] = {}

    def note(self, token_hash: bytes, device_uuid: uuid.UUID) -> None:
        if len(self._devices) >= self.capacity:
            self._devices = {}
        self._devices[token_hash] = device_uuid

    def is_of(self, token_hash: bytes, device_uuid: uuid.UUID) -> bool:
        return self._devices.get(token_hash) == device_uuid


device_tokens_seen = DeviceTokensSeen()


def authenticate_first() -> None:
    """Answer 401 or 403 before a body or query string is parsed: no one learns anything about
    validation (or costs the server a 1 MiB parse) without a token that may call the endpoint.

    A route guarded by ``require`` is authorized here with the same kinds (the principal is
    cached on ``g``, so the route's own check costs nothing); any other request with a body
    needs a valid token. The poll, a plain view with no body, checks its token in its one
    query. A view whose class sets ``checks_device_token`` (the device's status report) checks
    the token in the statement that does its work: here the token must be one this process has
    seen for that device (``DeviceTokensSeen``), else it is looked up once.
    """
    if request.url_rule is None or request.blueprint in UNAUTHENTICATED_BLUEPRINTS:
        return
    view = current_app.view_functions.get(request.endpoint or "")
    view_class = getattr(view, "view_class", None)
    if getattr(view_class, "checks_device_token", False):
        _refuse_unknown_device_token()
        return
    kinds = getattr(getattr(view_class, request.method.lower(), None), "required_kinds", None)
    if kinds is not None:
        authorize(kinds, (request.view_args or {}).get("uuid"))
    elif request.method in BODY_METHODS:
        current_principal()


def _refuse_unknown_device_token() -> None:
    if current_app.config["SETTINGS"].auth_disabled:
        return
    token = bearer_token() or ""
    if not token:
        abort(401, message="Missing bearer token")
    device_uuid = (request.view_args or {}).get("uuid")
    token_hash = hash_token(token)
    if device_uuid is None or device_tokens_seen.is_of(token_hash, device_uuid):
        return
    if not is_device_token(device_uuid, token_hash):
        authorize(("device",), device_uuid)  # answers 401 or 403
    device_tokens_seen.note(token_hash, device_uuid)


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

        # Read by ``authenticate_first`` (through the decorators above, which copy it).
        wrapper.required_kinds = kinds  # type: ignore[attr-defined]
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
