"""One error shape for every error: {"code", "status", "message", "errors"}."""

from __future__ import annotations

import logging
from collections.abc import Callable
from http import HTTPStatus
from typing import NoReturn, cast

import flask_smorest
from flask import Flask, jsonify
from werkzeug.exceptions import HTTPException

from dispatcher.errors import DispatcherError, Unavailable

# flask-smorest's abort carries no type information; it always raises.
abort = cast(Callable[..., NoReturn], flask_smorest.abort)

log = logging.getLogger(__name__)


def error_body(code: int, message: str, errors: dict | None = None, **extra: object) -> dict:
    body = {"code": code, "status": HTTPStatus(code).phrase, "message": message}
    body["errors"] = errors or {}
    body.update(extra)
    return body


def _respond(code: int, message: str, errors: dict | None = None, **extra: object):
    response = jsonify(error_body(code, message, errors, **extra))
    response.status_code = code
    return response


def _validation_errors(exc: HTTPException) -> dict:
    """webargs puts marshmallow's messages under data["messages"][location]."""
    messages = (getattr(exc, "data", None) or {}).get("messages") or {}
    merged: dict = {}
    for location_errors in messages.values():
        if isinstance(location_errors, dict):
            merged.update(location_errors)
    return merged


def register_error_handlers(app: Flask) -> None:
    @app.errorhandler(DispatcherError)
    def domain_error(exc: DispatcherError):
        response = _respond(exc.http_status, exc.message, exc.errors, **exc.details)
        if isinstance(exc, Unavailable):
            # Logged once per outage where it was noticed (dispatcher.db), not per request.
            response.headers["Retry-After"] = str(exc.retry_after_s)
        return response

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException):
        code = exc.code or 500
        errors = _validation_errors(exc)
        if code == 422:
            # Unparseable or invalid input is a Bad Request in this API.
            code = 400
        data = getattr(exc, "data", None) or {}
        message = data.get("message") or exc.description or HTTPStatus(code).phrase
        if errors and code == 400:
            message = "Invalid request: " + ", ".join(sorted(errors))
        response = _respond(code, message, errors)
        for name, value in (exc.get_response().headers.items() if code == 405 else []):
            if name == "Allow":
                response.headers["Allow"] = value
        return response

    @app.errorhandler(Exception)
    def unexpected_error(exc: Exception):
        log.exception("unhandled error")
        return _respond(500, "Internal server error")
