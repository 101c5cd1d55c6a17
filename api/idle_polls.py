"""The polls of devices this process knows idle, answered below Flask.

Most polls of a large fleet come from devices with nothing to do, and this process knows them
(``dispatcher.poll.idle``): their answer needs no query, so Flask's routing, request context and
hooks were most of its cost. This WSGI layer, inside ``api.proxies.ClientAddress`` (so the
client address is already found) and in front of the app, answers such a poll itself, exactly
as the app would: the same body and headers, the device heard from (``last_seen_at``), the
request counted in the metrics under the poll's URL rule and against the rate limits of its
address and its device (a refused one answers the same 429). Anything else goes to the app:
another path or method, a token this process has not seen accepted for the device (refused,
or not yet known: the app's one statement answers it), ``Cache-Control: no-cache`` (the
database's answer is asked for), a CORS request (an ``Origin``), a query string, and every
request when AUTH_DISABLED.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Callable, Iterable

from api.errors import error_body
from api.headers import DEFAULT_CSP
from api.rate_counts import RateLimits
from dispatcher import metrics
from dispatcher.config import Settings
from dispatcher.fleet.tokens import hash_token
from dispatcher.poll import next_job

# The poll's URL rule (api.device_jobs.next_device_job), as the metrics label it.
POLL_RULE = "/api/v1/devices/<uuid:uuid>/jobs/next"
_POLL_PATH = re.compile(
    r"/api/v1/devices/([0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-"
    r"[0-9A-Fa-f]{12})/jobs/next"
)
_SECURITY_HEADERS = [("X-Content-Type-Options", "nosniff"),
                     ("Content-Security-Policy", DEFAULT_CSP)]


class IdlePolls:
    """WSGI middleware answering the polls of devices this process knows idle."""

    def __init__(self, app: Callable, settings: Settings, limits: RateLimits) -> None:
        self.app = app
        self.limits = limits
        self.enabled = not settings.auth_disabled
        self.body = json.dumps(next_job.no_job_answer(settings.poll_after_s)).encode()

    def __call__(self, environ: dict, start_response: Callable) -> Iterable[bytes]:
        started = time.perf_counter()
        device = self._idle_device(environ)
        if device is None:
            return self.app(environ, start_response)
        refusal = self.limits.admit(environ.get("REMOTE_ADDR"), str(device))
        if refusal is not None:
            # As flask.jsonify encodes it (api.rate_limits answers with it).
            body = (json.dumps(error_body(429, refusal.message), separators=(",", ":"),
                               sort_keys=True) + "\n").encode()
            status = "429 TOO MANY REQUESTS"
            extra = [("Retry-After", str(refusal.retry_after_s))]
        else:
            self.limits.note_device_request(str(device))
            metrics.record_poll(handed_out_job=False)
            body, status, extra = self.body, "200 OK", []
        code = status.split(" ", 1)[0]
        metrics.HTTP_REQUESTS.labels("GET", POLL_RULE, code).inc()
        metrics.HTTP_REQUEST_DURATION.labels("GET", POLL_RULE).observe(
            time.perf_counter() - started)
        start_response(status, [("Content-Type", "application/json"),
                                ("Content-Length", str(len(body))), *extra,
                                *_SECURITY_HEADERS])
        return [body]

    def _idle_device(self, environ: dict) -> uuid.UUID | None:
        """The device of a poll this layer answers, else None."""
        if not self.enabled or environ.get("REQUEST_METHOD") != "GET":
            return None
        match = _POLL_PATH.fullmatch(environ.get("PATH_INFO", ""))
        if (match is None or environ.get("QUERY_STRING") or environ.get("HTTP_ORIGIN")
                or "no-cache" in environ.get("HTTP_CACHE_CONTROL", "")):
            return None
        scheme, _, token = environ.get("HTTP_AUTHORIZATION", "").partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            return None
        device = uuid.UUID(match.group(1))
        if not next_job.known_idle(device, hash_token(token)):
            return None
        return device
