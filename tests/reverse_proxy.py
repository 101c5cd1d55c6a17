"""nginx in front of a test's API, as the README's TLS proxy stands in front of gunicorn.

nginx (installed by ``deploy/services.sh``) listens on a free port of 127.0.0.1 and connects
to the API from ``PROXY_ADDRESS``, a loopback address of its own, so the API can tell the
proxy from clients that call it directly. It appends the caller's address to
``X-Forwarded-For``. A test calls through it from several loopback source addresses
(``call(..., source=...)``), as devices on several networks would.
"""

from __future__ import annotations

import http.client
import json
import shutil
import socket
import subprocess
import time
from pathlib import Path

PROXY_ADDRESS = "127.0.0.2"
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
START_TIMEOUT_S = 10.0

CONFIG = """\
daemon off;
worker_processes 1;
pid {run}/nginx.pid;
error_log {run}/error.log warn;
user root;
events {{ worker_connections 256; }}
http {{
    access_log off;
    client_body_temp_path {run}/body;
    proxy_temp_path {run}/proxy;
    fastcgi_temp_path {run}/fastcgi;
    uwsgi_temp_path {run}/uwsgi;
    scgi_temp_path {run}/scgi;
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://127.0.0.1:{upstream_port};
            proxy_bind {proxy_address};
            proxy_set_header Host $host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto $scheme;
        }}
    }}
}}
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class ReverseProxy:
    """A running nginx forwarding 127.0.0.1:``port`` to the API on ``upstream_port``."""

    def __init__(self, run_dir: Path, upstream_port: int) -> None:
        if not Path(NGINX).exists():
            raise AssertionError("nginx is not installed: run deploy/services.sh")
        self.run_dir = run_dir
        self.port = free_port()
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "nginx.conf").write_text(CONFIG.format(
            run=run_dir, port=self.port, upstream_port=upstream_port,
            proxy_address=PROXY_ADDRESS))
        self.process = subprocess.Popen(
            [NGINX, "-c", str(run_dir / "nginx.conf"), "-p", str(run_dir)],
            stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + START_TIMEOUT_S
        while not _accepts(self.port):
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"nginx did not start: {self.error_log()}")
            time.sleep(0.05)

    def error_log(self) -> str:
        log = self.run_dir / "error.log"
        return log.read_text() if log.exists() else ""

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def _accepts(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def call(port: int, method: str, path: str, headers: dict[str, str] | None = None,
         source: str = "127.0.0.1", body: object = None) -> tuple[int, dict[str, str], object]:
    """One request to 127.0.0.1:``port`` from the address ``source``: status, headers, JSON
    body (or text when it is not JSON)."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30,
                                            source_address=(source, 0))
    data = None if body is None else json.dumps(body).encode()
    sent = dict(headers or {})
    if data is not None:
        sent["Content-Type"] = "application/json"
    try:
        connection.request(method, path, body=data, headers=sent)
        response = connection.getresponse()
        raw = response.read()
        answer_headers = {name.lower(): value for name, value in response.getheaders()}
    finally:
        connection.close()
    try:
        decoded: object = json.loads(raw) if raw else None
    except ValueError:
        decoded = raw.decode(errors="replace")
    return response.status, answer_headers, decoded
