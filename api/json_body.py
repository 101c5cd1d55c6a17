"""Request bodies are JSON documents, and no body, however broken, is a server error.

webargs turns a syntax error in a JSON body into a 400, but lets two other failures of Python's
parser escape as 500s: RecursionError (``[[[[...`` nested past about a thousand levels, well
under the body size limit) and ValueError for an integer of more than 4300 digits. It also
reads a body sent with another content type as no body at all, so a form-encoded PATCH would
quietly change nothing. ``ResourceBlueprint`` answers all three as client errors.
"""

from __future__ import annotations

import json

import flask
from flask_smorest import Blueprint, abort
from webargs import core
from webargs.flaskparser import FlaskParser, is_json_request


class JsonBodyParser(FlaskParser):
    def _raw_load_json(self, req: flask.Request):
        if not is_json_request(req):
            if req.get_data(cache=True):
                abort(415, message="Request bodies must be JSON (Content-Type: application/json)")
            return core.missing
        try:
            return super()._raw_load_json(req)
        except json.JSONDecodeError:
            raise
        except RecursionError:
            raise json.JSONDecodeError("nested too deeply", "<body>", 0) from None
        except ValueError as exc:
            raise json.JSONDecodeError(str(exc), "<body>", 0) from None

    def _handle_invalid_json_error(self, error, req, *args, **kwargs):
        abort(400, message=f"Malformed JSON body: {error}")


class ResourceBlueprint(Blueprint):
    """A flask-smorest Blueprint whose request bodies are parsed by ``JsonBodyParser``."""

    ARGUMENTS_PARSER = JsonBodyParser()
