"""The agent's HTTP client follows no redirect: its token never goes to another host."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from agent.server_api import DeviceApi, ProtocolError

DEVICE = "8479359e-dbeb-4858-813c-e8a9008dde04"


@contextmanager
def http_server(status: int, headers: dict[str, str], body: bytes = b"{}") -> Iterator[tuple]:
    """A server answering every request with ``status``; yields (url, requests seen)."""
    seen: list[dict] = []

    class Handler(BaseHTTPRequestHandler):
        def _answer(self) -> None:
            seen.append({"path": self.path, "authorization": self.headers.get("Authorization")})
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_PATCH = do_POST = _answer

        def log_message(self, format, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}", seen
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_a_redirect_is_a_protocol_error_and_the_token_stays_home(status):
    job = b'{"jobId": "x", "jobDocument": {}}'
    with http_server(200, {"Content-Type": "application/json"}, job) as (elsewhere, stolen), \
            http_server(status, {"Location": f"{elsewhere}/steal"}) as (server, _):
        api = DeviceApi(server, DEVICE, "device-token")
        for call in (api.next_job, lambda: api.report_status("j", {"status": "IN_PROGRESS"}),
                     lambda: api.fetch_handler("h")):
            with pytest.raises(ProtocolError, match=f"HTTP {status} redirect refused"):
                call()
    assert stolen == []
