"""Portal sign-in: an admin or viewer token starts a server-side session
(``dispatcher.fleet.portal_sessions``) whose random secret the signed session cookie carries.

The cookie (Flask's signed session) is HttpOnly, SameSite=Lax, Secure when the request came
over https, and expires after ``SESSION_LIFETIME``. It holds the session's secret and its CSRF
token, nothing the database stores: the database keeps only the secret's SHA-256. Each request
looks the session up, so signing out, revoking the token or changing ``ADMIN_TOKEN`` ends it
at once, for every copy of the cookie.

The signing key is ``SECRET_KEY`` (the server commands refuse a weak one); when that is unset
it is derived from ``ADMIN_TOKEN`` (so every gunicorn worker agrees on it and changing the
admin token signs everyone out), and with neither set it is random per process: sessions then
do not survive a restart and, with several workers, may fail on another worker, which is
logged.

Every POST carries the session's CSRF token in the form field ``csrf_token``.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import logging
import secrets
from datetime import timedelta

from flask import Flask, abort, current_app, g, redirect, request, session, url_for
from flask.sessions import SecureCookieSessionInterface
from flask.typing import ResponseReturnValue

from api.auth import ANONYMOUS_ADMIN
from dispatcher.config import Settings
from dispatcher.fleet import portal_sessions
from dispatcher.fleet.tokens import Principal

log = logging.getLogger(__name__)

SESSION_LIFETIME = timedelta(hours=12)
PORTAL_ROLES = frozenset({"admin", "viewer"})
# Reachable without a session: the sign-in page and the stylesheet and script it loads.
PUBLIC_ENDPOINTS = frozenset({"portal.login", "portal.static"})
STATE_CHANGING = frozenset({"POST", "PUT", "PATCH", "DELETE"})


class PortalSessionInterface(SecureCookieSessionInterface):
    """The signed cookie session, Secure exactly when the request is https."""

    def get_cookie_secure(self, app: Flask) -> bool:
        return request.is_secure


def configure(app: Flask, settings: Settings) -> None:
    app.secret_key = session_signing_key(settings)
    app.session_interface = PortalSessionInterface()
    app.config.update(
        SESSION_COOKIE_NAME="portal_session",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_PATH="/portal",
        PERMANENT_SESSION_LIFETIME=SESSION_LIFETIME,
    )


def session_signing_key(settings: Settings) -> str:
    if settings.secret_key:
        return settings.secret_key
    if settings.admin_token:
        return hmac.new(settings.admin_token.encode(), b"device-jobs portal session",
                        hashlib.sha256).hexdigest()
    log.warning("Neither SECRET_KEY nor ADMIN_TOKEN is set: portal sessions are signed with a "
                "random key of this process; they do not survive a restart, and with several "
                "API workers a session made by one is refused by the others.")
    return secrets.token_hex(32)


def sign_in(token: str, settings: Settings) -> Principal | None:
    """Start a session for an admin or viewer ``token``; None when it is not one."""
    started = portal_sessions.start_session(token, settings.admin_token)
    if started is None or started[1].kind not in PORTAL_ROLES:
        return None
    secret, principal = started
    sign_out()
    session.permanent = True
    session["session_secret"] = secret
    session["csrf_token"] = secrets.token_urlsafe(32)
    return principal


def sign_out() -> None:
    """End this browser's session on the server, and forget it in the cookie."""
    secret = session.get("session_secret")
    if isinstance(secret, str) and secret:
        portal_sessions.end_session(secret)
    session.clear()


def csrf_token() -> str:
    """The session's CSRF token (made on first use, also before sign-in: the login form)."""
    if "csrf_token" not in session:
        session["csrf_token"] = secrets.token_urlsafe(32)
    return session["csrf_token"]


def session_principal(settings: Settings) -> Principal | None:
    if settings.auth_disabled:
        return ANONYMOUS_ADMIN
    secret = session.get("session_secret")
    if not isinstance(secret, str) or not secret:
        return None
    principal = portal_sessions.session_principal(secret, settings.admin_token)
    if principal is None or principal.kind not in PORTAL_ROLES:
        return None
    return principal


def require_login() -> ResponseReturnValue | None:
    """Before each portal request: check CSRF on a POST, resolve the signed-in principal (on
    ``g``, where ``api.auth.actor`` finds it for the audit trail), or send to the login page."""
    if request.method in STATE_CHANGING:
        sent = request.form.get("csrf_token", "")
        expected = session.get("csrf_token", "")
        # Compared as bytes: compare_digest refuses str with non-ASCII characters.
        if not expected or not hmac.compare_digest(sent.encode(), expected.encode()):
            abort(400, "The form's CSRF token is missing or out of date: reload the page and "
                       "try again.")
    if request.endpoint in PUBLIC_ENDPOINTS:
        return None
    principal = session_principal(current_app.config["SETTINGS"])
    if principal is None:
        session.pop("session_secret", None)
        return redirect(url_for("portal.login", next=request.full_path
                                if request.method == "GET" else None))
    g.principal = principal
    return None


def can_write() -> bool:
    principal = g.get("principal")
    return principal is not None and principal.kind == "admin"


def require_admin() -> None:
    """Refuse a write to a viewer, whatever the page showed."""
    if not can_write():
        abort(403, "Viewer tokens may only read: this needs an admin token.")


def admin_only(view):
    """A view only an admin may call (the server's refusal; the page hides the control)."""

    @functools.wraps(view)
    def wrapper(*args, **kwargs):
        require_admin()
        return view(*args, **kwargs)

    return wrapper
