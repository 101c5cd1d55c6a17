"""Request bodies are JSON documents, and no body, however broken, is a server error.

webargs turns a syntax error in a JSON body into a 400, but lets two other failures of Python's
parser escape as 500s: RecursionError (``[[[[...`` nested past about a thousand levels, well
under the body size limit) and ValueError for an integer of more than 4300 digits. It also
reads a body sent with another content type as no body at all, so a form-encoded PATCH would
quietly change nothing. ``ResourceBlueprint`` answers all three as client errors, and refuses
a body nested deeper than ``MAX_JSON_DEPTH``: what the parser accepts, the code that walks a
document (rendering placeholders, validating, storing) must not run out of stack on.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import flask
from flask_smorest import Blueprint, abort
from marshmallow import Schema
from webargs import core
from webargs.flaskparser import FlaskParser, is_json_request

from schemas.common import PaginationQuery

# Far deeper than any job document, filter or report needs.
MAX_JSON_DEPTH = 64


def nesting_depth(value: object, stop_after: int = MAX_JSON_DEPTH) -> int:
    """How deeply ``value``'s lists and objects nest (a scalar is 0), counted without
    recursion; counting stops once past ``stop_after``."""
    deepest = 0
    pending: list[tuple[object, int]] = [(value, 0)]
    while pending:
        item, depth = pending.pop()
        if isinstance(item, dict | list):
            depth += 1
            deepest = max(deepest, depth)
            if deepest > stop_after:
                return deepest
            children = item.values() if isinstance(item, dict) else item
            pending.extend((child, depth) for child in children)
    return deepest


def parse_json_text(text: str | bytes) -> object:
    """``json.loads``, with every way it can fail (or nest too deeply) a ValueError."""
    try:
        value = json.loads(text)
    except RecursionError:
        raise ValueError("nested too deeply") from None
    if nesting_depth(value) > MAX_JSON_DEPTH:
        raise ValueError(f"nested more than {MAX_JSON_DEPTH} levels deep")
    return value


class JsonBodyParser(FlaskParser):
    def _raw_load_json(self, req: flask.Request):
        if not is_json_request(req):
            if req.get_data(cache=True):
                abort(415, message="Request bodies must be JSON (Content-Type: application/json)")
            return core.missing
        try:
            body = super()._raw_load_json(req)
        except json.JSONDecodeError:
            raise
        except RecursionError:
            raise json.JSONDecodeError("nested too deeply", "<body>", 0) from None
        except ValueError as exc:
            raise json.JSONDecodeError(str(exc), "<body>", 0) from None
        if nesting_depth(body) > MAX_JSON_DEPTH:
            raise json.JSONDecodeError(f"nested more than {MAX_JSON_DEPTH} levels deep",
                                       "<body>", 0)
        return body

    def _handle_invalid_json_error(self, error, req, *args, **kwargs):
        abort(400, message=f"Malformed JSON body: {error}")


class ResourceBlueprint(Blueprint):
    """A flask-smorest Blueprint whose request bodies are parsed by ``JsonBodyParser``."""

    ARGUMENTS_PARSER = JsonBodyParser()

    def arguments(self, schema: type[Schema] | Schema, *args: Any, **kwargs: Any
                  ) -> Callable[[Callable], Callable]:
        """flask-smorest's, with a schema class made an instance once, here: given the class,
        webargs builds an instance (deep-copying every field) on every request, a tenth of a
        status report's CPU under load (py-spy: Parser._get_schema)."""
        instance = schema() if isinstance(schema, type) else schema
        return super().arguments(instance, *args, **kwargs)

    def view(self, guard: Callable[[Callable], Callable], answer: type[Schema] | Schema,
             status: int = 200, *, body: type[Schema] | Schema | None = None,
             body_required: bool = True, query: type[Schema] | Schema | None = None,
             ) -> Callable[[Callable], Callable]:
        """A view's one decorator: ``guard`` (who may call it) outermost, so the caller is
        checked before anything is parsed; then its JSON ``body`` or its ``query`` string, each
        passed to the view as its first argument; then its answer, dumped with ``answer``."""

        def decorate(view: Callable) -> Callable:
            documented = self.response(status, answer)(view)
            if query is not None:
                documented = self.arguments(query, location="query")(documented)
            if body is not None:
                documented = self.arguments(body, required=body_required)(documented)
            return guard(documented)

        return decorate

    def page(self, guard: Callable[[Callable], Callable], answer: type[Schema],
             lister: Callable[[int, int], dict], doc: str) -> Callable:
        """A collection's GET: the page of ``lister(limit, offset)`` that the query string asks
        for, documented by ``doc``."""

        def get(view: object, query: dict) -> dict:
            return lister(query["limit"], query["offset"])

        get.__doc__ = doc
        return self.view(guard, answer, query=PaginationQuery)(get)

    def one(self, guard: Callable[[Callable], Callable], answer: type[Schema],
            getter: Callable[[Any], dict], doc: str | None = None) -> Callable:
        """An item's GET: ``getter`` called with the one key its URL names."""

        def get(view: object, **key: Any) -> dict:
            return getter(*key.values())

        get.__doc__ = doc
        return self.view(guard, answer)(get)


def with_changed(found: tuple[dict, dict]) -> dict:
    """An edited resource as an update answers it: the resource and, under ``changed``, each
    changed field as ``{"from": ..., "to": ...}``."""
    resource, changed = found
    return {**resource, "changed": changed}
