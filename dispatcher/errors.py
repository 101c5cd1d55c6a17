"""One exception hierarchy for the domain; the API maps each class to one HTTP status."""

from __future__ import annotations


class DispatcherError(Exception):
    """Base of every error the domain raises on purpose."""

    http_status = 500

    def __init__(self, message: str, errors: dict | None = None, **details: object) -> None:
        super().__init__(message)
        self.message = message
        self.errors = errors or {}
        self.details = details


class InvalidInput(DispatcherError):
    http_status = 400


class NotFound(DispatcherError):
    http_status = 404


class Forbidden(DispatcherError):
    """The caller may not do this (an approval by the job's own creator, when another admin's
    is required)."""

    http_status = 403


class Conflict(DispatcherError):
    """The request clashes with the current state (duplicate name, refused transition)."""

    http_status = 409


class Unavailable(DispatcherError):
    """A dependency (the database) cannot be reached: the caller should retry later."""

    http_status = 503
    retry_after_s = 5


class RolledBack(Unavailable):
    """The database rolled the change back to break a deadlock (or a serialization failure):
    it is up, and the same request retried at once succeeds."""

    retry_after_s = 1


class Misconfigured(DispatcherError):
    """A server command would run with settings that would put the fleet at risk."""
