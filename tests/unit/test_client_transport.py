"""The operator client sends its token to the configured API only: no redirect is followed,
and plain http to another host is refused, as the device agent does."""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from client import ApiError, DeviceJobsClient
from client.errors import NotConfigured

TOKEN = "operator-admin-token"


class Recorder(BaseHTTPRequestHandler):
    """Answers every request with the server's ``answer``; keeps each Authorization seen."""

    def do_GET(self) -> None:
        self.server.seen.append(self.headers.get("Authorization"))  # type: ignore[attr-defined]
        status, location = self.server.answer  # type: ignore[attr-defined]
        self.send_response(status)
        if location:
            self.send_header("Location", location)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(b'{"executions": [], "total": 0, "limit": 1, "offset": 0}')

    def log_message(self, *args) -> None:
        pass


def serve(answer: tuple[int, str]) -> tuple[ThreadingHTTPServer, threading.Thread]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    server.seen, server.answer = [], answer  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    return server, thread


@pytest.fixture
def elsewhere() -> Iterator[ThreadingHTTPServer]:
    server, _ = serve((200, ""))
    yield server
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize("status", [301, 302, 307, 308])
def test_a_redirect_is_refused_and_the_token_stays_home(elsewhere, status):
    target = f"http://127.0.0.1:{elsewhere.server_address[1]}/api/v1/jobs/executions"
    api, _ = serve((status, target))
    try:
        client = DeviceJobsClient(f"http://127.0.0.1:{api.server_address[1]}", TOKEN)
        with pytest.raises(ApiError) as refused:
            client.list_executions(limit=1)
    finally:
        api.shutdown()
        api.server_close()
    assert refused.value.status == status
    assert "redirect refused" in str(refused.value) and target in str(refused.value)
    assert elsewhere.seen == []


@pytest.mark.parametrize("url", ["http://jobs.example.com", "http://10.0.0.5:8000",
                                 "http://[2001:db8::1]:8000"])
def test_plain_http_to_another_host_is_refused(url):
    with pytest.raises(NotConfigured) as refused:
        DeviceJobsClient(url, TOKEN)
    assert "https" in str(refused.value)
    DeviceJobsClient(url, TOKEN, allow_insecure_http=True)
    # https anywhere, and plain http to this host, need no such setting.
    for accepted in ("https://jobs.example.com", "http://127.0.0.1:8000",
                     "http://localhost:8000", "http://[::1]:8000"):
        assert DeviceJobsClient(accepted, TOKEN).url == accepted


def test_the_cli_refuses_plain_http_to_another_host(tmp_path):
    env = {"DEVICE_JOBS_CONFIG": str(tmp_path / "config.json"), "PATH": "/usr/bin:/bin"}
    command = [sys.executable, "-m", "dispatcher", "jobs", "list", "--url",
               "http://jobs.example.com", "--token", TOKEN]
    refused = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)
    assert refused.returncode == 8, refused.stderr
    assert "plain http" in refused.stderr
    allowed = subprocess.run(command, capture_output=True, text=True, timeout=60,
                             env={**env, "DEVICE_JOBS_ALLOW_INSECURE_HTTP": "true",
                                  "http_proxy": "http://127.0.0.1:9"})
    assert allowed.returncode == 9, allowed.stderr  # tried, and could not reach it
