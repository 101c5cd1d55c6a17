"""The device side of the HTTP protocol, with urllib from the standard library.

Every call returns an ``ApiAnswer`` for 2xx and 4xx answers; anything that says "try again
later" (no connection, timeout, 5xx, 429) raises ``ServerUnavailable``. Redirects are never
followed (a 3xx is a ``ProtocolError``): following one would send the device's token, and
take jobs from, whatever host the answer names.
"""

from __future__ import annotations

import http.client
import json
import logging
import ssl
import urllib.error
import urllib.request
from dataclasses import dataclass
from urllib.parse import quote

from agent import __version__

log = logging.getLogger(__name__)

HTTP_TIMEOUT_S = 30.0
MAX_ANSWER_BYTES = 1024 * 1024
FRESH_ANSWER = {"Cache-Control": "no-cache"}


class AgentError(Exception):
    """Base of the agent's own errors."""


class ServerUnavailable(AgentError):
    """The server could not be reached or asked us to come back later."""


class ProtocolError(AgentError):
    """The server answered something that does not follow the device protocol."""


@dataclass(frozen=True)
class ApiAnswer:
    status: int
    body: dict

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300


class DeviceApi:
    """Calls the device endpoints of one server as one device."""

    def __init__(
        self,
        server_url: str,
        device_uuid: str,
        token: str,
        ca_file: str = "",
        timeout_s: float = HTTP_TIMEOUT_S,
    ) -> None:
        self.device_uuid = device_uuid
        self._base = f"{server_url.rstrip('/')}/api/v1/devices/{quote(device_uuid)}"
        self._token = token
        self._timeout_s = timeout_s
        self._opener = _opener_without_redirects(
            ssl.create_default_context(cafile=ca_file) if ca_file else None
        )

    def next_job(self, fresh: bool = False) -> ApiAnswer:
        """Poll. ``fresh`` (after an MQTT nudge) asks the server for its database's answer,
        not one it may keep in memory and have not yet updated for the job the nudge is about."""
        return self._request("GET", "/jobs/next", headers=FRESH_ANSWER if fresh else None)

    def report_status(self, job_id: str, body: dict) -> ApiAnswer:
        return self._request("PATCH", f"/jobs/{quote(job_id, safe='')}/status", body)

    def report_inventory(self, body: dict) -> ApiAnswer:
        return self._request("PUT", "/inventory", body)

    def request_mqtt_login(self) -> ApiAnswer:
        """Ask the server to give the broker this device's MQTT identity again."""
        return self._request("POST", "/mqtt-credentials")

    def fetch_handler(self, name: str) -> ApiAnswer:
        return self._request("GET", f"/handlers/{quote(name, safe='')}")

    def open_artifact(
        self, artifact_id: str, headers: dict[str, str]
    ) -> http.client.HTTPResponse:
        """Start the download of an artifact this device's job pinned: the open answer to
        read from (urllib.error.HTTPError for a 3xx, 4xx or 5xx answer; never redirected,
        so the token goes to the server alone). For ``agent.downloads``."""
        request = urllib.request.Request(f"{self._base}/artifacts/{quote(artifact_id, safe='')}")
        request.add_header("Authorization", f"Bearer {self._token}")
        request.add_header("User-Agent", f"jobs-agent/{__version__}")
        for name, value in headers.items():
            request.add_header(name, value)
        return self._opener.open(request, timeout=self._timeout_s)

    def _request(
        self, method: str, path: str, body: dict | None = None,
        headers: dict[str, str] | None = None,
    ) -> ApiAnswer:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self._base + path, data=data, method=method)
        request.add_header("Authorization", f"Bearer {self._token}")
        request.add_header("Accept", "application/json")
        request.add_header("User-Agent", f"jobs-agent/{__version__}")
        if data is not None:
            request.add_header("Content-Type", "application/json")
        for name, value in (headers or {}).items():
            request.add_header(name, value)
        redirect_target = ""
        try:
            with self._opener.open(request, timeout=self._timeout_s) as response:
                status, raw = response.status, response.read(MAX_ANSWER_BYTES + 1)
        except urllib.error.HTTPError as exc:
            redirect_target = exc.headers.get("Location", "") if exc.headers else ""
            status, raw = exc.code, _read_error_body(exc)
        except (OSError, http.client.HTTPException) as exc:
            reason = getattr(exc, "reason", exc)
            raise ServerUnavailable(f"{method} {path}: {reason}") from None
        if status >= 500 or status == 429:
            raise ServerUnavailable(f"{method} {path}: HTTP {status}")
        if 300 <= status < 400:
            raise ProtocolError(f"{method} {path}: HTTP {status} redirect refused (to "
                                f"{redirect_target!r}); set server_url to the server itself")
        return ApiAnswer(status, _parse_body(method, path, status, raw))


def _opener_without_redirects(context: ssl.SSLContext | None) -> urllib.request.OpenerDirector:
    """urllib's default opener less its HTTPRedirectHandler: a 3xx comes back as an HTTPError."""
    opener = urllib.request.OpenerDirector()
    for handler in (urllib.request.ProxyHandler(), urllib.request.UnknownHandler(),
                    urllib.request.HTTPHandler(), urllib.request.HTTPSHandler(context=context),
                    urllib.request.HTTPDefaultErrorHandler(),
                    urllib.request.HTTPErrorProcessor()):
        opener.add_handler(handler)
    return opener


def _read_error_body(exc: urllib.error.HTTPError) -> bytes:
    try:
        return exc.read(MAX_ANSWER_BYTES + 1)
    except OSError:
        return b""
    finally:
        exc.close()


def _parse_body(method: str, path: str, status: int, raw: bytes) -> dict:
    if len(raw) > MAX_ANSWER_BYTES:
        raise ProtocolError(f"{method} {path}: answer larger than {MAX_ANSWER_BYTES} bytes")
    try:
        body = json.loads(raw) if raw.strip() else {}
    except ValueError:
        if status >= 400:
            return {"message": raw[:200].decode(errors="replace")}
        raise ProtocolError(f"{method} {path}: HTTP {status} answer is not JSON") from None
    if not isinstance(body, dict):
        raise ProtocolError(f"{method} {path}: HTTP {status} answer is not a JSON object")
    return body
