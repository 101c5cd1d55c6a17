"""Deeply nested JSON bodies are a client error, not a crash.

Python's JSON parser raises RecursionError (not ValueError) past about a thousand levels of
nesting, so ``[[[[...`` well under the body size limit would otherwise surface as a 500.
"""

from __future__ import annotations

from flask_smorest import Blueprint

from api.errors import error_body


def refuse_deeply_nested_json(blp: Blueprint) -> None:
    """Answer 400 instead of 500 when a request to ``blp`` is nested too deeply to parse."""

    @blp.errorhandler(RecursionError)
    def nested_too_deeply(exc: RecursionError):
        return error_body(400, "The JSON body is nested too deeply."), 400
