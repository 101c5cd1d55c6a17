"""Swagger UI's scripts and styles, served by the API itself.

The page at ``/api/v1/docs`` loads them from ``/api/v1/swagger-ui/``, so the docs work on a
site with no way out to a CDN. The files come from the swagger-ui-bundle package.
"""

from __future__ import annotations

from flask import Blueprint, Response, send_from_directory
from swagger_ui_bundle import swagger_ui_path

# Relative to the docs page, so the UI also works behind a proxy that adds a path prefix.
SWAGGER_UI_URL = "swagger-ui/"
CACHE_MAX_AGE_S = 24 * 3600

blp = Blueprint("api-docs-assets", __name__, url_prefix="/api/v1/swagger-ui")


@blp.get("/<path:filename>")
def swagger_ui_asset(filename: str) -> Response:
    return send_from_directory(swagger_ui_path, filename, max_age=CACHE_MAX_AGE_S)
