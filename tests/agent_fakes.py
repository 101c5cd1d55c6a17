"""A stand-in for the server's device endpoints, for the agent's unit tests.

It speaks the device protocol's shapes and refusals (camelCase poll answer, 409 with
``current_status``, idempotent terminal reports) over real HTTP on a local port, and can be
told to fail (503) or to answer garbage. Integration and end-to-end tests use the real API.
"""

from __future__ import annotations

import json
import re
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

TOKEN = "fake-device-token"
DEVICE_UUID = "8479359e-dbeb-4858-813c-e8a9008dde04"
PENDING = ("QUEUED", "IN_PROGRESS")
TERMINAL = ("SUCCEEDED", "FAILED", "TIMED_OUT", "REJECTED", "CANCELED", "REMOVED")
DEVICE_STATUSES = ("IN_PROGRESS", "SUCCEEDED", "FAILED", "REJECTED")
ROUTE = re.compile(
    r"^/api/v1/devices/([^/]+)/(jobs/next|jobs/([^/]+)/status|handlers/([^/]+)|mqtt-credentials)$")
# The MQTT login the fake server gives the device when it asks for it again.
RENEWED_MQTT_PASSWORD = "renewed-password"


class FakeDeviceServer:
    def __init__(self) -> None:
        self.jobs: dict[str, dict] = {}
        self.reports: list[tuple[str, dict]] = []  # every accepted report, in order
        self.handlers: dict[str, dict] = {}
        self.poll_after_s = 30
        self.down = False
        self.canned: list[tuple[int, bytes]] = []  # answers to the next polls, verbatim
        self.polls = 0
        self.fresh_polls = 0  # polls that asked for an answer from the database (nudged)
        self.mqtt_logins = 0  # times the device asked for its MQTT login again
        self.lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def add_job(self, document: object, name: str = "test job", execution_number: int = 1,
                status: str = "QUEUED", signature: str | None = None,
                signed_job: str | None = None, job_id: str | None = None,
                parent_job_id: str | None = None) -> str:
        job_id = job_id or str(uuid.uuid4())
        self.jobs[job_id] = {"document": document, "name": name, "status": status,
                             "execution_number": execution_number, "signature": signature,
                             "signed_job": signed_job, "parent_job_id": parent_job_id}
        return job_id

    def set_status(self, job_id: str, status: str) -> None:
        self.jobs[job_id]["status"] = status

    def reports_for(self, job_id: str) -> list[dict]:
        return [body for reported, body in self.reports if reported == job_id]

    def statuses(self, job_id: str) -> list[str]:
        return [body["status"] for body in self.reports_for(job_id)]

    def answer(self, method: str, path: str, token: str, body: dict | None) -> tuple[int, object]:
        if self.down:
            return 503, {"code": 503, "message": "Service Unavailable"}
        match = ROUTE.match(path)
        if match is None:
            return 404, {"code": 404, "message": "Not Found"}
        if token != TOKEN or match.group(1) != DEVICE_UUID:
            return 401, {"code": 401, "message": "Invalid or revoked token"}
        with self.lock:
            if match.group(2) == "jobs/next" and method == "GET":
                return self._next()
            if match.group(3) and method == "PATCH":
                return self._report(match.group(3), body or {})
            if match.group(2) == "mqtt-credentials" and method == "POST":
                self.mqtt_logins += 1
                return 200, {"url": "mqtt://127.0.0.1:1883", "username": DEVICE_UUID,
                             "password": RENEWED_MQTT_PASSWORD, "ready": True}
            if match.group(4) and method == "GET":
                handler = self.handlers.get(match.group(4))
                return (200, handler) if handler else (404, {"code": 404, "message": "no"})
        return 405, {"code": 405, "message": "Method Not Allowed"}

    def _next(self) -> tuple[int, object]:
        self.polls += 1
        if self.canned:
            return self.canned.pop(0)
        pending = [(job_id, job) for job_id, job in self.jobs.items() if job["status"] in PENDING]
        pending.sort(key=lambda item: item[1]["status"] != "IN_PROGRESS")
        if not pending:
            return 200, {"message": "No pending jobs", "pollAfterSeconds": self.poll_after_s}
        job_id, job = pending[0]
        return 200, {
            "jobId": job_id, "jobName": job["name"], "jobDocument": job["document"],
            "deviceUuid": DEVICE_UUID, "queuedAt": "2026-01-01T00:00:00Z",
            "executionNumber": job["execution_number"], "versionNumber": 1,
            "status": job["status"], "jobDocumentSignature": job["signature"],
            "signedJob": job["signed_job"], "parentJobId": job["parent_job_id"],
            "pollAfterSeconds": self.poll_after_s,
        }

    def _report(self, job_id: str, body: dict) -> tuple[int, object]:
        job = self.jobs.get(job_id)
        if job is None:
            return 404, {"code": 404, "message": f"no job {job_id}"}
        target, current = body.get("status"), job["status"]
        if target not in DEVICE_STATUSES:
            return 400, {"code": 400, "message": "bad status", "errors": {"status": ["bad"]}}
        if current == target and target in TERMINAL:
            return 200, {"job_id": job_id, "status": current}
        if current not in PENDING:
            return 409, {"code": 409, "status": "Conflict", "current_status": current,
                         "message": f"Cannot change status from {current} to {target}"}
        job["status"] = target
        self.reports.append((job_id, body))
        return 200, {"job_id": job_id, "status": target}

    def __enter__(self) -> FakeDeviceServer:
        self._thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._server.shutdown()
        self._server.server_close()


def _handler_for(fake: FakeDeviceServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(length)) if length else None
            token = self.headers.get("Authorization", "").removeprefix("Bearer ")
            if self.path.endswith("/jobs/next") and self.headers.get("Cache-Control") == "no-cache":
                fake.fresh_polls += 1
            status, answer = fake.answer(self.command, self.path, token, body)
            raw = answer if isinstance(answer, bytes) else json.dumps(answer).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)

        do_GET = do_PATCH = do_POST = _serve

        def log_message(self, format, *args) -> None:
            pass

    return Handler


@contextmanager
def fake_server() -> Iterator[FakeDeviceServer]:
    with FakeDeviceServer() as server:
        yield server
