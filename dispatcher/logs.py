"""Logging configuration: key=value text lines, or one JSON object a line.

Log messages are written as ``"fanout chunk done job_id=%s rows=%d"``. The job and device a
line is about are also kept in a context (set per API request from the URL, per Celery task from
its arguments) and added to every line logged inside it, so a grep for one ``job_id`` or
``device_uuid`` finds everything that happened to it.

``LOG_FORMAT=json`` gives JSON lines whose ``key=value`` pairs are fields of their own.
"""

from __future__ import annotations

import contextvars
import json
import logging
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"
_KEY_VALUE = re.compile(r"\b([a-z_][a-z0-9_]*)=(\S+)")

_context: contextvars.ContextVar[dict[str, str] | None] = contextvars.ContextVar(
    "log_context", default=None
)


def set_log_context(**fields: object) -> contextvars.Token:
    """Attach ``job_id``/``device_uuid`` to the lines logged from here on (None is skipped)."""
    merged = {**(_context.get() or {}), **{k: str(v) for k, v in fields.items() if v is not None}}
    return _context.set(merged)


def reset_log_context(token: contextvars.Token) -> None:
    _context.reset(token)


@contextmanager
def log_context(**fields: object) -> Iterator[None]:
    token = set_log_context(**fields)
    try:
        yield
    finally:
        reset_log_context(token)


class ContextFilter(logging.Filter):
    """Copies the current log context onto each record as ``record.context``."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.context = _context.get() or {}
        return True


class TextFormatter(logging.Formatter):
    """The standard line, plus the context's key=value pairs the message does not already have."""

    def __init__(self) -> None:
        super().__init__(TEXT_FORMAT)

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        context = getattr(record, "context", None) or {}
        message = record.getMessage()
        extra = [f"{k}={v}" for k, v in context.items() if f"{k}=" not in message]
        return f"{line} {' '.join(extra)}" if extra else line


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        entry: dict[str, object] = {
            "time": self.formatTime(record),
            "level": record.levelname,
            "logger": record.name,
            "message": message,
        }
        entry.update(getattr(record, "context", None) or {})
        for key, value in _KEY_VALUE.findall(message):
            entry.setdefault(key, value)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def configure_logging(level: str = "INFO", log_format: str | None = None) -> None:
    """Configure the root logger once per process (again: replaces the handler)."""
    log_format = (log_format or os.environ.get("LOG_FORMAT") or "text").lower()
    handler = logging.StreamHandler()
    handler.addFilter(ContextFilter())
    handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
