"""The operator portal: server-rendered pages under /portal/, served by the API's Flask app.

Pages call ``dispatcher`` like the API's blueprints do and validate with the API's own schemas,
so a form shows the field errors the API would answer. Login is with an admin or viewer token
(``api.portal.sessions``); every POST carries a CSRF token; a viewer sees no write control and
is refused one anyway. Everything a device sends is escaped by Jinja's autoescape, and the
Content-Security-Policy allows no inline script. Live parts poll small HTML fragments
(``static/portal.js``); no request is held open.
"""

from __future__ import annotations

import logging

from flask import Blueprint, Flask, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from werkzeug.exceptions import HTTPException, NotFound

from api.portal import filters, sessions
from dispatcher.config import Settings
from dispatcher.errors import DispatcherError

log = logging.getLogger(__name__)

CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'"
)

bp = Blueprint("portal", __name__, url_prefix="/portal", template_folder="pages",
               static_folder="static")


def install_portal(app: Flask, settings: Settings) -> None:
    """Serve the portal (unless PORTAL_ENABLED is off) and send ``/`` to it."""
    if not settings.portal_enabled:
        return
    from api.portal import (  # noqa: F401 - routes join bp
        artifacts,
        catalog,
        enrollment,
        execute,
        executions,
        fleet,
        groups,
        rollouts,
    )

    sessions.configure(app, settings)
    filters.register(app)
    app.register_blueprint(bp)
    app.add_url_rule("/", "portal_root", lambda: redirect(url_for("portal.home")))


@bp.before_request
def _signed_in() -> ResponseReturnValue | None:
    return sessions.require_login()


@bp.after_request
def _security_headers(response):
    response.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["Referrer-Policy"] = "same-origin"
    if request.endpoint != "portal.static":
        response.headers["Cache-Control"] = "no-store"
    return response


@bp.route("/")
def home():
    return redirect(url_for("portal.executions"))


@bp.route("/<path:unknown>")
def unknown_page(unknown: str):
    raise NotFound(f"There is no portal page at /portal/{unknown}")


@bp.errorhandler(DispatcherError)
def _domain_error(exc: DispatcherError):
    return _error_page(exc.http_status, exc.message)


@bp.errorhandler(HTTPException)
def _http_error(exc: HTTPException):
    return _error_page(exc.code or 500, exc.description or "")


@bp.errorhandler(Exception)
def _unexpected_error(exc: Exception):
    log.exception("unhandled error in the portal")
    return _error_page(500, "Something went wrong on the server; it has been logged.")


def _error_page(code: int, message: str):
    return render_template("error.html", code=code, message=message), code
