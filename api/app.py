"""The Flask application factory."""

from __future__ import annotations

import importlib
import logging

from flask import Flask
from flask_smorest import Api

from api.auth import authorize_api_docs, refuse_remote_callers_without_auth
from api.cors import install_cors
from api.docs_assets import SWAGGER_UI_URL
from api.errors import register_error_handlers
from api.headers import add_security_headers
from api.idle_polls import IdlePolls
from api.portal import install_portal
from api.proxies import ClientAddress, TrustedProxies
from api.rate_limits import install_rate_limits
from dispatcher import db
from dispatcher.config import Settings
from dispatcher.jobs import report_batches

log = logging.getLogger(__name__)

# One blueprint per resource; each module exposes ``blp``.
RESOURCE_BLUEPRINTS = (
    "api.devices",
    "api.templates",
    "api.handlers",
    "api.device_jobs",
    "api.executions",
    "api.execute",
    "api.job_events",
    "api.enrollment",
    "api.device_enroll",
    "api.inventory",
    "api.groups",
    "api.artifacts",
)


def create_app(settings: Settings | None = None) -> Flask:
    settings = settings or Settings.from_env()
    app = Flask("device-jobs")
    app.config.update(
        SETTINGS=settings,
        MAX_CONTENT_LENGTH=settings.max_body_bytes,
        API_TITLE="device-jobs",
        API_VERSION="v1",
        OPENAPI_VERSION="3.0.3",
        OPENAPI_URL_PREFIX="/api/v1",
        OPENAPI_JSON_PATH="openapi.json",
        OPENAPI_SWAGGER_UI_PATH="docs",
        OPENAPI_SWAGGER_UI_URL=SWAGGER_UI_URL,
        API_SPEC_OPTIONS={
            "components": {
                "securitySchemes": {"bearerAuth": {"type": "http", "scheme": "bearer"}}
            },
            "security": [{"bearerAuth": []}],
        },
        JSON_SORT_KEYS=False,
    )
    if settings.auth_disabled:
        log.warning(
            "AUTH_DISABLED is set: every request is treated as an admin. "
            "Never run like this outside local development."
        )
    db.configure(settings)
    report_batches.of_this_process.window_s = settings.report_batch_window_ms / 1000
    api = Api(app)
    # After Api(app): ours replaces flask-smorest's handler, so every error has one shape.
    register_error_handlers(app)
    install_rate_limits(app, settings)
    # The client address first, then the idle devices' polls answered below the app.
    app.wsgi_app = ClientAddress(  # type: ignore[method-assign]
        IdlePolls(app.wsgi_app, settings, app.extensions["rate_limits"]),
        TrustedProxies(settings.forwarded_allow_ips))
    app.before_request(refuse_remote_callers_without_auth)
    app.before_request(authorize_api_docs)
    app.after_request(add_security_headers)
    from api.agent_package import blp as agent_package_blp
    from api.docs_assets import blp as docs_assets_blp
    from api.health import blp as health_blp

    app.register_blueprint(health_blp)
    app.register_blueprint(docs_assets_blp)
    app.register_blueprint(agent_package_blp)
    from api.metrics import install_metrics

    install_metrics(app)
    install_cors(app, settings.cors_allowed_origins)
    install_portal(app, settings)
    for module_name in RESOURCE_BLUEPRINTS:
        module = importlib.import_module(module_name)
        api.register_blueprint(module.blp, url_prefix="/api/v1")
    return app
