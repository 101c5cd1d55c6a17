"""``/metrics`` for Prometheus, and the request hooks that feed it and the log context.

Requests are counted by URL rule (``/api/v1/devices/<uuid:uuid>/jobs/next``), never by raw path,
so a fleet of devices is a handful of series, not one per device. With METRICS_TOKEN set, a
scrape must bear it; without, /metrics answers only callers on this host that no proxy relayed
(a Prometheus elsewhere needs the token).
"""

from __future__ import annotations

import hmac
import time

from flask import Blueprint, Flask, Response, current_app, g, request
from flask_smorest import abort

from api.auth import bearer_token, is_direct_loopback_caller
from dispatcher import metrics
from dispatcher.logs import reset_log_context, set_log_context

UNMATCHED_ENDPOINT = "unmatched"

blp = Blueprint("metrics", __name__)


@blp.get("/metrics")
def prometheus_metrics() -> Response:
    expected = current_app.config["SETTINGS"].metrics_token
    if expected:
        presented = bearer_token()
        if presented is None:
            abort(401, message="Missing bearer token: /metrics needs the METRICS_TOKEN")
        if not hmac.compare_digest((presented or "").encode(), expected.encode()):
            abort(401, message="Invalid token for /metrics")
    elif not is_direct_loopback_caller():
        abort(403, message="/metrics answers this host only; set METRICS_TOKEN to scrape it "
                           "from elsewhere")
    body, content_type = metrics.exposition()
    return Response(body, content_type=content_type)


def mark_poll(handed_out_job: bool) -> None:
    """Called by the poll view: count this request among the polls (when it answers 200),
    as one that handed out a job or one that did not. The view knows; no answer is re-read."""
    g.poll_handed_out_job = handed_out_job


def _request_started() -> None:
    g.request_started = time.perf_counter()
    args = request.view_args or {}
    g.log_context_token = set_log_context(
        job_id=args.get("job_id") or args.get("jobId"),
        device_uuid=args.get("uuid") or args.get("device_uuid"),
    )


def _request_finished(response: Response) -> Response:
    started = g.pop("request_started", None)
    rule = request.url_rule.rule if request.url_rule is not None else UNMATCHED_ENDPOINT
    metrics.HTTP_REQUESTS.labels(request.method, rule, str(response.status_code)).inc()
    if started is not None:
        metrics.HTTP_REQUEST_DURATION.labels(request.method, rule).observe(
            time.perf_counter() - started
        )
    handed_out_job = g.pop("poll_handed_out_job", None)
    if handed_out_job is not None and response.status_code == 200:
        metrics.record_poll(handed_out_job)
    return response


def _request_torn_down(exc: BaseException | None) -> None:
    token = g.pop("log_context_token", None)
    if token is not None:
        reset_log_context(token)


def install_metrics(app: Flask) -> None:
    """Serve /metrics and measure every request of ``app``."""
    app.register_blueprint(blp)
    app.before_request(_request_started)
    app.after_request(_request_finished)
    app.teardown_request(_request_torn_down)
