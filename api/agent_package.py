"""The agent's Debian package for devices to download: a device needs only the server's URL.

``GET /agent/jobs-agent.deb`` answers the package named by the ``AGENT_PACKAGE`` setting (built
by ``scripts/build-agent-deb``) with its sha256 in ``X-Checksum-SHA256`` and as its ETag;
``GET /agent/jobs-agent.deb.sha256`` answers the line ``sha256sum -c`` checks. No token: the
package holds nothing secret, and apt verifies nothing else about a local file.
"""

from __future__ import annotations

import hashlib
import threading
from pathlib import Path

from flask import Blueprint, Response, current_app, send_file
from flask_smorest import abort

DOWNLOAD_NAME = "jobs-agent.deb"
READ_CHUNK_BYTES = 1024 * 1024

blp = Blueprint("agent-package", __name__)
# (path, size, mtime_ns) -> sha256: hashed once per build of the package, not per download.
_digests: dict[tuple[str, int, int], str] = {}
_digests_lock = threading.Lock()


def _package() -> tuple[Path, str]:
    configured = current_app.config["SETTINGS"].agent_package
    path = Path(configured)
    if not configured or not path.is_file():
        abort(404, message="No agent package here: build one with scripts/build-agent-deb "
                           "and set AGENT_PACKAGE to its path")
    stat = path.stat()
    key = (str(path), stat.st_size, stat.st_mtime_ns)
    with _digests_lock:
        digest = _digests.get(key)
    if digest is None:
        sha256 = hashlib.sha256()
        with path.open("rb") as file:
            for chunk in iter(lambda: file.read(READ_CHUNK_BYTES), b""):
                sha256.update(chunk)
        digest = sha256.hexdigest()
        with _digests_lock:
            _digests[key] = digest
    return path, digest


@blp.get("/agent/jobs-agent.deb")
def agent_package() -> Response:
    path, digest = _package()
    response = send_file(path, mimetype="application/vnd.debian.binary-package",
                         as_attachment=True, download_name=path.name, etag=digest,
                         conditional=True)
    response.headers["X-Checksum-SHA256"] = digest
    return response


@blp.get("/agent/jobs-agent.deb.sha256")
def agent_package_sha256() -> Response:
    path, digest = _package()
    return Response(f"{digest}  {DOWNLOAD_NAME}\n", mimetype="text/plain",
                    headers={"X-Package-File": path.name})
