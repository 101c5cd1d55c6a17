"""The client's errors: one for every answer of the API that is not a success, one for a server
that cannot be reached, one for a client with no URL or token to use."""

from __future__ import annotations


class ClientError(Exception):
    """Base of the client's errors; ``str()`` is a one-line message for an operator."""


class NotConfigured(ClientError):
    """No API URL or no token: neither given, nor in the environment, nor in the config file."""


class ServerUnreachable(ClientError):
    """The API could not be reached (refused, DNS, TLS, timeout): no HTTP answer at all."""

    def __init__(self, url: str, reason: str) -> None:
        super().__init__(f"cannot reach the API at {url}: {reason}")
        self.url = url
        self.reason = reason


class ApiError(ClientError):
    """An HTTP error answer, carrying the API's error body ``{code, status, message, errors}``.

    ``errors`` maps a field to its messages (nested for nested fields), as the API sent them.
    """

    def __init__(self, status: int, message: str, errors: dict | None = None,
                 body: object = None) -> None:
        self.status = status
        self.message = message
        self.errors = errors or {}
        self.body = body
        super().__init__(self.one_line())

    @property
    def field_errors(self) -> list[tuple[str, str]]:
        """(dotted field path, message) for every field error, nested fields flattened."""
        return list(_flatten(self.errors, ""))

    def one_line(self) -> str:
        details = "; ".join(f"{field}: {message}" for field, message in self.field_errors)
        text = f"{self.status} {self.message}"
        return f"{text} ({details})" if details else text


def _flatten(errors: object, prefix: str):
    if isinstance(errors, dict):
        for key, value in errors.items():
            yield from _flatten(value, f"{prefix}.{key}" if prefix else str(key))
    elif isinstance(errors, list | tuple):
        if all(isinstance(item, str) for item in errors):
            yield prefix or "request", " ".join(errors)
        else:
            for item in errors:
                yield from _flatten(item, prefix)
    else:
        yield prefix or "request", str(errors)
