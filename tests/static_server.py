"""nginx from the distribution serving a directory on 127.0.0.1: the static file server that
artifact tests and benchmarks compare with or download from (it answers ranges)."""

from __future__ import annotations

import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from processes import free_port


@contextmanager
def nginx(root: Path, work: Path) -> Iterator[int]:
    """nginx serving ``root`` (readable by its workers, which run as another user); yields
    its port."""
    port = free_port()
    work.mkdir(parents=True, exist_ok=True)
    config = work / "nginx.conf"
    config.write_text(f"""
daemon off; worker_processes auto; pid {work}/nginx.pid; error_log {work}/error.log;
events {{ worker_connections 1024; }}
http {{
  access_log off; sendfile on; tcp_nopush on;
  client_body_temp_path {work}/body; proxy_temp_path {work}/proxy;
  fastcgi_temp_path {work}/fastcgi; uwsgi_temp_path {work}/uwsgi; scgi_temp_path {work}/scgi;
  server {{ listen 127.0.0.1:{port}; root {root}; }}
}}
""")
    process = subprocess.Popen(["nginx", "-p", str(work), "-c", str(config)])
    try:
        wait_for_port(port)
        yield port
    finally:
        process.terminate()
        process.wait(30)


def wait_for_port(port: int) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=1).close()
            return
        except urllib.error.HTTPError:
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"nothing listens on {port}")
