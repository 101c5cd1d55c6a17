"""A client of the device-jobs REST API (``/api/v1``), on the standard library alone.

Every method is one call of the API and answers its JSON body; an error answer raises
``ApiError`` with the API's error body, no answer at all ``ServerUnreachable``. ``iter_*``
methods walk every page of a list. A client holds no connection between calls, so one
instance may be shared by threads.

The token goes to the configured URL and nowhere else, as the device agent's does: a redirect
is never followed (it would carry the token to whatever host the answer names) and a plain
``http://`` URL to a host other than this one is refused unless ``allow_insecure_http``.
"""

from __future__ import annotations

import ipaddress
import json
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import IO, Any

from client.errors import ApiError, NotConfigured, ServerUnreachable
from schemas.vocabulary import TARGET_ALL, TARGET_DEVICE, TARGET_GROUP

PAGE_SIZE = 200
# Allows a plain http:// API URL to another host (a network the operator trusts).
INSECURE_HTTP_ENV = "DEVICE_JOBS_ALLOW_INSECURE_HTTP"
JSON = dict[str, Any]


@dataclass(frozen=True)
class Target:
    """Which devices an execution targets: a list of devices, a group filter, or all."""

    target_type: str
    target_devices: tuple[str, ...] = ()
    target_filter: Mapping[str, Any] | None = None
    group_name: str | None = None

    @classmethod
    def devices(cls, device_uuids: list[str] | list[uuid.UUID]) -> Target:
        return cls(TARGET_DEVICE, target_devices=tuple(str(u) for u in device_uuids))

    @classmethod
    def group(cls, target_filter: Mapping[str, Any]) -> Target:
        """Devices matching a filter (the filter language; plain keys are attributes)."""
        return cls(TARGET_GROUP, target_filter=dict(target_filter))

    @classmethod
    def named_group(cls, name: str) -> Target:
        """A named group (dynamic or static) as it is when the job fans out."""
        return cls(TARGET_GROUP, group_name=name)

    @classmethod
    def all(cls) -> Target:
        return cls(TARGET_ALL)

    def fields(self) -> JSON:
        body: JSON = {"target_type": self.target_type}
        if self.target_devices:
            body["target_devices"] = list(self.target_devices)
        if self.target_filter is not None:
            body["target_filter"] = dict(self.target_filter)
        if self.group_name is not None:
            body["group"] = self.group_name
        return body


def execute_body(
    target: Target,
    *,
    template_id: int | None = None,
    job_document: Mapping[str, Any] | None = None,
    job_name: str | None = None,
    parameters: Mapping[str, str] | None = None,
    policies: Mapping[str, Any] | None = None,
    created_by: str | None = None,
) -> JSON:
    """The body of POST /jobs/execute. ``policies`` holds any of the policy fields
    (``execution_type``, ``schedule``, ``scheduling_config``, ``rollout_config``,
    ``abort_config``, ``timeout_config``, ``retry_config``) and is sent as given: the API
    checks them."""
    body: JSON = {**target.fields(), **(policies or {})}
    optional = {"template_id": template_id, "job_document": job_document, "job_name": job_name,
                "created_by": created_by}
    body.update({name: value for name, value in optional.items() if value is not None})
    if parameters:
        body["parameters"] = dict(parameters)
    return body


class _RefuseRedirects(urllib.request.HTTPRedirectHandler):
    """A 3xx comes back as an HTTPError instead of a new request carrying the token."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None


def check_api_url(url: str, allow_insecure_http: bool = False) -> None:
    """Raise NotConfigured for a URL the token must not be sent to in clear text."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise NotConfigured(f"not a valid API URL {url!r}: must be http(s)://host")
    host = parts.hostname or ""
    try:
        this_host = ipaddress.ip_address(host).is_loopback
    except ValueError:
        this_host = host == "localhost"
    if parts.scheme == "http" and not this_host and not allow_insecure_http:
        raise NotConfigured(
            f"{url} is plain http to another host, which would send the token in clear "
            f"text; use https (or set {INSECURE_HTTP_ENV}=true on a network you trust)")


class DeviceJobsClient:
    """The API at ``url`` (e.g. ``https://jobs.example.com``), called with a bearer ``token``.
    A plain ``http://`` URL must name this host, unless ``allow_insecure_http``."""

    def __init__(self, url: str, token: str | None, timeout_s: float = 30.0,
                 allow_insecure_http: bool = False) -> None:
        check_api_url(url, allow_insecure_http)
        self.url = url.rstrip("/")
        self.token = token
        self.timeout_s = timeout_s
        self._opener = urllib.request.build_opener(_RefuseRedirects)

    # -- the HTTP layer -------------------------------------------------------------------

    def request(self, method: str, path: str, body: object = None,
                query: Mapping[str, object] | None = None,
                raw_body: IO[bytes] | None = None, raw_length: int = 0) -> Any:
        """Call ``/api/v1{path}`` and answer the decoded JSON body. ``raw_body`` (a file of
        ``raw_length`` bytes) is streamed as the body instead of JSON."""
        url = f"{self.url}/api/v1{path}"
        params = {k: _query_value(v) for k, v in (query or {}).items() if v is not None}
        if params:
            url += "?" + urllib.parse.urlencode(params)
        headers = {"Accept": "application/json", "User-Agent": "device-jobs-client"}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        if raw_body is not None:
            headers.update({"Content-Type": "application/octet-stream",
                            "Content-Length": str(raw_length)})
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        req = urllib.request.Request(url, data=raw_body if raw_body is not None else data,
                                     headers=headers, method=method)
        try:
            with self._opener.open(req, timeout=self.timeout_s) as response:
                return _decode(response.read())
        except urllib.error.HTTPError as exc:
            if 300 <= exc.code < 400:
                location = exc.headers.get("Location", "") if exc.headers else ""
                raise ApiError(exc.code, f"redirect refused (to {location!r}): the token is "
                               "sent to the configured URL only; set it to the API itself") \
                    from None
            raise _api_error(exc.code, exc.reason, exc.read()) from None
        except (TimeoutError, urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", None) or exc
            raise ServerUnreachable(self.url, str(reason)) from None

    def _pages(self, path: str, key: str, query: Mapping[str, object]) -> Iterator[JSON]:
        offset = 0
        while True:
            page = self.request("GET", path, query={**query, "limit": PAGE_SIZE,
                                                    "offset": offset})
            yield from page[key]
            offset += len(page[key])
            if not page[key] or offset >= page["total"]:
                return

    # -- templates ------------------------------------------------------------------------

    def list_templates(self, category: str | None = None, active: bool | None = None,
                       limit: int = 50, offset: int = 0) -> JSON:
        return self.request("GET", "/jobs/templates", query={
            "category": category, "active": active, "limit": limit, "offset": offset})

    def iter_templates(self, category: str | None = None,
                       active: bool | None = None) -> Iterator[JSON]:
        return self._pages("/jobs/templates", "templates",
                           {"category": category, "active": active})

    def get_template(self, template_id: int) -> JSON:
        return self.request("GET", f"/jobs/templates/{template_id}")

    def find_template(self, name: str) -> JSON | None:
        """The template called ``name``, or None."""
        return next((t for t in self.iter_templates() if t["name"] == name), None)

    def create_template(self, template: Mapping[str, Any]) -> JSON:
        return self.request("POST", "/jobs/templates", dict(template))

    def update_template(self, template_id: int, changes: Mapping[str, Any]) -> JSON:
        """The template after the change, with ``changed``: each changed field's from/to."""
        return self.request("PUT", f"/jobs/templates/{template_id}", dict(changes))

    def delete_template(self, template_id: int) -> JSON:
        return self.request("DELETE", f"/jobs/templates/{template_id}")

    def apply_template(self, template: Mapping[str, Any]) -> tuple[str, JSON]:
        """Create the template, or update the one of the same name to match: ("created" |
        "updated" | "unchanged", the template). Applying the same file twice changes nothing."""
        existing = self.find_template(template["name"])
        return _applied(template, None if existing is None else existing["id"],
                        self.create_template, self.update_template)

    # -- handlers -------------------------------------------------------------------------

    def list_handlers(self, limit: int = 50, offset: int = 0) -> JSON:
        return self.request("GET", "/jobs/handlers", query={"limit": limit, "offset": offset})

    def iter_handlers(self) -> Iterator[JSON]:
        return self._pages("/jobs/handlers", "handlers", {})

    def get_handler(self, name: str) -> JSON:
        return self.request("GET", f"/jobs/handlers/{_segment(name)}")

    def create_handler(self, handler: Mapping[str, Any]) -> JSON:
        return self.request("POST", "/jobs/handlers", dict(handler))

    def update_handler(self, name: str, changes: Mapping[str, Any]) -> JSON:
        return self.request("PUT", f"/jobs/handlers/{_segment(name)}", dict(changes))

    def delete_handler(self, name: str) -> JSON:
        return self.request("DELETE", f"/jobs/handlers/{_segment(name)}")

    def apply_handler(self, handler: Mapping[str, Any]) -> tuple[str, JSON]:
        """Create the handler or update the one of the same name, as ``apply_template``."""
        existing: str | None = handler["name"]
        try:
            self.get_handler(handler["name"])
        except ApiError as exc:
            if exc.status != 404:
                raise
            existing = None
        return _applied(handler, existing, self.create_handler, self.update_handler)

    # -- devices --------------------------------------------------------------------------

    def list_devices(self, device_type: str | None = None,
                     attributes: Mapping[str, str] | None = None,
                     limit: int = 50, offset: int = 0) -> JSON:
        return self.request("GET", "/devices", query={
            "device_type": device_type, "filter": json.dumps(attributes) if attributes else None,
            "limit": limit, "offset": offset})

    def iter_devices(self, device_type: str | None = None,
                     attributes: Mapping[str, str] | None = None) -> Iterator[JSON]:
        return self._pages("/devices", "devices", {
            "device_type": device_type, "filter": json.dumps(attributes) if attributes else None})

    def get_device(self, device_uuid: str) -> JSON:
        return self.request("GET", f"/devices/{device_uuid}")

    def create_device(self, device: Mapping[str, Any]) -> JSON:
        """The device with its ``device_token``, which the API shows only this once."""
        return self.request("POST", "/devices", dict(device))

    def update_device(self, device_uuid: str, changes: Mapping[str, Any]) -> JSON:
        return self.request("PATCH", f"/devices/{device_uuid}", dict(changes))

    def delete_device(self, device_uuid: str) -> JSON:
        return self.request("DELETE", f"/devices/{device_uuid}")

    def rotate_device_token(self, device_uuid: str) -> JSON:
        """A new token for the device (the old one stops working)."""
        return self.request("POST", f"/devices/{device_uuid}/token")

    def device_jobs(self, device_uuid: str, status: str | None = None, limit: int = 50,
                    offset: int = 0) -> JSON:
        """A page of the device's executions, newest first."""
        return self.request("GET", f"/devices/{device_uuid}/jobs", query={
            "status": status, "limit": limit, "offset": offset})

    def iter_device_jobs(self, device_uuid: str, status: str | None = None) -> Iterator[JSON]:
        return self._pages(f"/devices/{device_uuid}/jobs", "jobs", {"status": status})

    # -- executing and following jobs -------------------------------------------------------

    def execute(self, body: Mapping[str, Any]) -> JSON:
        """Create an execution (see ``execute_body``): ``{"job": ..., "message": ...}``."""
        return self.request("POST", "/jobs/execute", dict(body))

    def preview(self, body: Mapping[str, Any]) -> JSON:
        """What ``execute(body)`` would create, checked the same way; nothing is stored."""
        return self.request("POST", "/jobs/execute/preview", dict(body))

    def list_executions(self, status: str | None = None, limit: int = 50,
                        offset: int = 0) -> JSON:
        return self.request("GET", "/jobs/executions", query={
            "status": status, "limit": limit, "offset": offset})

    def get_execution(self, job_id: str) -> JSON:
        """``{"job": ... (live counters), "device_statuses": [first devices], ...}``."""
        return self.request("GET", f"/jobs/executions/{job_id}")

    def execution_devices(self, job_id: str, status: str | None = None, limit: int = 50,
                          offset: int = 0) -> JSON:
        return self.request("GET", f"/jobs/executions/{job_id}/devices", query={
            "status": status, "limit": limit, "offset": offset})

    def iter_execution_devices(self, job_id: str, status: str | None = None) -> Iterator[JSON]:
        return self._pages(f"/jobs/executions/{job_id}/devices", "device_statuses",
                           {"status": status})

    def job_events(self, job_id: str, limit: int = 50, offset: int = 0) -> JSON:
        return self.request("GET", f"/jobs/executions/{job_id}/events",
                            query={"limit": limit, "offset": offset})

    def iter_job_events(self, job_id: str) -> Iterator[JSON]:
        return self._pages(f"/jobs/executions/{job_id}/events", "events", {})

    def job_runs(self, job_id: str, limit: int = 50, offset: int = 0) -> JSON:
        """The runs of a recurring job."""
        return self.request("GET", f"/jobs/executions/{job_id}/runs",
                            query={"limit": limit, "offset": offset})

    def cancel(self, job_id: str, force: bool = False, reason: str | None = None) -> JSON:
        """Cancel a job; ``force`` cancels the devices running it too."""
        return self.request("POST", f"/jobs/executions/{job_id}/cancel",
                            _cancel_body(force, reason))

    def retry(self, job_id: str) -> JSON:
        """Queue the job again on its failed devices."""
        return self.request("POST", f"/jobs/executions/{job_id}/retry")

    def cancel_device(self, job_id: str, device_uuid: str, force: bool = False,
                      reason: str | None = None) -> JSON:
        return self.request("POST", f"/devices/{device_uuid}/jobs/{job_id}/cancel",
                            _cancel_body(force, reason))

    def retry_device(self, job_id: str, device_uuid: str) -> JSON:
        return self.request("POST", f"/devices/{device_uuid}/jobs/{job_id}/retry")

    def rollout_action(self, job_id: str, action: str) -> JSON:
        """``pause``, ``resume``, ``promote`` or ``approve`` a staged rollout; answers the
        rollout as it is afterwards."""
        return self.request("POST", f"/jobs/executions/{job_id}/{_segment(action)}")


def _cancel_body(force: bool, reason: str | None) -> JSON:
    body: JSON = {"force": force}
    if reason is not None:
        body["reason"] = reason
    return body


def _applied(document: Mapping[str, Any], existing: Any,
             create: Callable[[Mapping[str, Any]], JSON],
             update: Callable[[Any, Mapping[str, Any]], JSON]) -> tuple[str, JSON]:
    """What applying ``document`` did: "created" it (no ``existing`` key), or "updated" the
    existing one to match, or left it "unchanged"; and the stored thing."""
    if existing is None:
        return "created", create(document)
    changes = {k: v for k, v in document.items() if k not in ("name", "created_by")}
    updated = update(existing, changes)
    return ("updated" if updated["changed"] else "unchanged"), updated


def _segment(text: str) -> str:
    return urllib.parse.quote(text, safe="")


def _query_value(value: object) -> object:
    return ("true" if value else "false") if isinstance(value, bool) else value


def _decode(raw: bytes) -> Any:
    return json.loads(raw) if raw.strip() else None


def _api_error(status: int, reason: str, raw: bytes) -> ApiError:
    """The API's error body as an ApiError; an answer from something else (a proxy's HTML
    page) keeps its HTTP reason as the message."""
    try:
        body = json.loads(raw)
    except ValueError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("message"), str):
        errors = body.get("errors")
        return ApiError(status, body["message"], errors if isinstance(errors, dict) else {}, body)
    return ApiError(status, str(reason or "HTTP error"), {}, raw.decode(errors="replace"))


