"""Artifacts (admin), and a device's download of one with its own token.

The download answers ranges (``206`` with ``Content-Range``; ``416`` when unsatisfiable; a
request for several ranges gets the whole file with ``200``), ``ETag`` (the sha256) and
``If-Range``. Its memory stays flat whatever the size: a local file goes out whole through the
server's ``sendfile`` (``wsgi.file_wrapper``), a range or an S3 object a chunk at a time. The
device's token is checked here; the storage never sees it, and the device never sees the
storage.
"""

from __future__ import annotations

import contextlib
import fcntl
import io
import os
import socket
import ssl
import uuid as uuid_mod
from collections.abc import Iterator
from typing import IO, Any, cast

from flask import Response, current_app, jsonify, request
from flask import abort as abort_with
from flask.views import MethodView
from werkzeug.http import parse_range_header
from werkzeug.wsgi import wrap_file

from api.auth import actor, device_access, read_access, write_access
from api.errors import abort, error_body
from api.json_body import ResourceBlueprint
from dispatcher.catalog import artifacts
from dispatcher.catalog.artifact_storage import ArtifactStorage, storage_from_settings
from dispatcher.errors import InvalidInput
from schemas.artifacts import ArtifactList, ArtifactSchema, ArtifactUploadQuery

blp = ResourceBlueprint("artifacts", __name__, description="Files delivered to devices")

MULTIPART = "multipart/form-data"
# The most a pipe carries from the socket to the file per splice (the system default at most).
PIPE_BYTES = 1024 * 1024


def artifact_storage() -> ArtifactStorage:
    """This app's artifact storage (made once: an S3 client is worth keeping)."""
    extensions = current_app.extensions
    if "artifact_storage" not in extensions:
        extensions["artifact_storage"] = storage_from_settings(current_app.config["SETTINGS"])
    return extensions["artifact_storage"]


@blp.route("/artifacts")
class Artifacts(MethodView):
    get = blp.page(read_access, ArtifactList, artifacts.list_artifacts,
                   "Artifacts, newest first, each with the live executions that use it.")

    @blp.view(write_access, ArtifactSchema, 201, query=ArtifactUploadQuery)
    @blp.alt_response(200, schema=ArtifactSchema, description="Already stored")
    def post(self, query: dict):
        """Upload a file: the raw body, or a multipart form's ``file`` (with an optional
        ``sha256`` field beside it). 201 with the new artifact; 200 with the artifact already
        stored when this name holds this content; 422 when ``sha256`` does not match; 413 past
        ``ARTIFACT_MAX_BYTES``."""
        settings = current_app.config["SETTINGS"]
        request.max_content_length = settings.artifact_max_bytes
        expected = query.get("sha256")
        if request.mimetype == MULTIPART:
            upload = request.files.get("file")
            if upload is None:
                abort(400, message="Multipart upload without a 'file' part",
                      errors={"file": ["Missing data for required field."]})
            expected = expected or request.form.get("sha256") or None
            stream, content_type = upload.stream, upload.mimetype
        else:
            stream, content_type = raw_body(settings.artifact_max_bytes), request.mimetype
        artifact, created = artifacts.store_artifact(
            artifact_storage(), query["name"], stream, content_type or None, expected,
            settings.artifact_max_bytes, actor())
        return artifact, 201 if created else 200


def raw_body(max_bytes: int) -> IO[bytes]:
    """The request's body as a stream: the server's own input when it bounds it itself
    (``wsgi.input_terminated``, as gunicorn does: half the cost per byte of werkzeug's
    wrapper), else werkzeug's limited stream. A declared length past ``max_bytes`` is 413 at
    once; the storage counts what actually comes."""
    if (request.content_length or 0) > max_bytes:
        abort(413, message=f"Artifact larger than ARTIFACT_MAX_BYTES ({max_bytes} bytes)")
    if request.environ.get("wsgi.input_terminated"):
        body, length = request.environ["wsgi.input"], request.content_length
        if length is None:
            return body
        return cast(IO[bytes], gunicorn_socket_body(body, length) or DeclaredBody(body, length))
    return request.stream


class DeclaredBody:
    """A body of declared length that refuses to end early: the server's own input answers
    end of file when the client closes the connection half-way, which must not store the
    part that came as if it were the whole (werkzeug's stream says so itself)."""

    def __init__(self, stream: IO[bytes], length: int) -> None:
        self._stream, self._left = stream, length

    def read(self, size: int = -1) -> bytes:
        chunk = self._stream.read(size)
        self._left -= len(chunk)
        if not chunk and size != 0 and self._left > 0:
            raise InvalidInput(f"The request body ended {self._left} bytes before its "
                               "Content-Length")
        return chunk


class GunicornSocketBody(DeclaredBody):
    """A body of declared length on a plain gunicorn connection, which the storage may move
    into a file straight from the socket (``os.splice``: the bytes never enter Python). What
    gunicorn already read of it is taken through gunicorn first; every byte taken from the
    socket is counted off gunicorn's own reader, so that after an error the rest of the body is
    still skipped correctly before the connection's next request."""

    def __init__(self, body: Any, length: int) -> None:
        super().__init__(body, length)
        self._body, self._reader = body, body.reader

    def _held(self) -> int:
        """Bytes of the body gunicorn has read from the socket and not yet handed out."""
        return (self._body.buf.getbuffer().nbytes
                + self._reader.unreader.buf.getbuffer().nbytes)

    def splice_into(self, descriptor: int) -> Iterator[int]:
        while self._left and (held := self._held()):
            chunk = self.read(min(held, self._left))
            _write_all(descriptor, chunk)
            yield len(chunk)
        if self._reader.length != self._left:  # never expected: take the slow way, correctly
            while chunk := self.read(PIPE_BYTES):
                _write_all(descriptor, chunk)
                yield len(chunk)
            return
        source = self._reader.unreader.sock.fileno()
        pipe_out, pipe_in = os.pipe()
        try:
            with contextlib.suppress(OSError):  # bigger steps where the system allows
                fcntl.fcntl(pipe_in, fcntl.F_SETPIPE_SZ, PIPE_BYTES)
            while self._left:
                moved = os.splice(source, pipe_in, min(self._left, PIPE_BYTES))
                if moved == 0:
                    raise InvalidInput(f"The request body ended {self._left} bytes before "
                                       "its Content-Length")
                self._left -= moved
                self._reader.length -= moved
                left_in_pipe = moved
                while left_in_pipe:
                    left_in_pipe -= os.splice(pipe_out, descriptor, left_in_pipe)
                yield moved
        finally:
            os.close(pipe_in)
            os.close(pipe_out)


def _write_all(descriptor: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(descriptor, view):]


def gunicorn_socket_body(body: Any, length: int) -> GunicornSocketBody | None:
    """The body as a ``GunicornSocketBody`` when it is gunicorn's, of known length, on a plain
    blocking socket (TLS bytes cannot be spliced) on a system with ``os.splice``; else None."""
    reader = getattr(body, "reader", None)
    unreader = getattr(reader, "unreader", None)
    sock = getattr(unreader, "sock", None)
    if (not hasattr(os, "splice") or type(reader).__name__ != "LengthReader"
            or not isinstance(getattr(body, "buf", None), io.BytesIO)
            or not isinstance(getattr(unreader, "buf", None), io.BytesIO)
            or not isinstance(sock, socket.socket) or isinstance(sock, ssl.SSLSocket)
            or sock.gettimeout() is not None or getattr(reader, "length", None) is None):
        return None
    return GunicornSocketBody(body, length)


@blp.route("/artifacts/<artifact_id>")
class Artifact(MethodView):
    @blp.view(read_access, ArtifactSchema)
    def get(self, artifact_id: str):
        """One artifact with every execution that pinned it."""
        return artifacts.get_artifact(artifact_id)

    @blp.view(write_access, ArtifactSchema)
    def delete(self, artifact_id: str):
        """Delete an artifact (409 while a live execution uses it); answers it as it was."""
        return artifacts.delete_artifact(artifact_storage(), artifact_id, actor())


@blp.route("/devices/<uuid:uuid>/artifacts/<artifact_id>")
class DeviceArtifactDownload(MethodView):
    @device_access
    @blp.doc(responses={"200": {"description": "The whole file"},
                        "206": {"description": "The range asked for"},
                        "404": {"description": "No unfinished execution of this device "
                                               "uses this artifact"},
                        "416": {"description": "Range not satisfiable"}})
    def get(self, uuid: uuid_mod.UUID, artifact_id: str):
        """An artifact's bytes, for the device whose token this is, while one of its
        unfinished executions uses it (404 otherwise)."""
        artifact = artifacts.get_device_artifact(uuid, artifact_id)
        return artifact_response(artifact_storage(), artifact)


def requested_range(size: int, etag: str) -> tuple[int, int] | None:
    """The one byte range (first, last) this request asks for and may get; None for the
    whole file. A ``416`` answer when it asks only for bytes past the end."""
    header = request.headers.get("Range")
    if not header or size == 0:
        return None
    if_range = request.headers.get("If-Range")
    if if_range is not None and if_range.strip() != etag:
        return None  # the file changed (or a date, which we do not keep): all of it
    parsed = parse_range_header(header)
    if parsed is None or parsed.units != "bytes" or len(parsed.ranges) != 1:
        return None  # unreadable, or several ranges: the whole file
    found = parsed.range_for_length(size)
    if found is None:
        response = jsonify(error_body(416, f"Range {header!r} is outside the file "
                                           f"({size} bytes)"))
        response.status_code = 416
        response.headers["Content-Range"] = f"bytes */{size}"
        abort_with(response)
    return found[0], found[1] - 1


def artifact_response(storage: ArtifactStorage, artifact: dict) -> Response:
    size, etag = artifact["size"], f'"{artifact["sha256"]}"'
    wanted = requested_range(size, etag)
    headers = {"ETag": etag, "Accept-Ranges": "bytes", "Cache-Control": "private, no-cache",
               "Content-Disposition": f'attachment; filename="{artifact["name"]}"'}
    path = storage.local_path(artifact["storage_key"])
    if wanted is None:
        status, first, last = 200, 0, size - 1
        if path is not None:
            try:
                file = open(path, "rb")  # noqa: SIM115 - the server closes it when sent
            except OSError:
                abort(503, message=f"Artifact {artifact['id']} is missing from the storage")
            body = wrap_file(request.environ, file)
        else:
            body = storage.read_range(artifact["storage_key"], first, last) if size else iter(())
    else:
        status, (first, last) = 206, wanted
        headers["Content-Range"] = f"bytes {first}-{last}/{size}"
        body = storage.read_range(artifact["storage_key"], first, last)
    headers["Content-Length"] = str(last - first + 1)
    return Response(body, status=status, headers=headers, mimetype=artifact["content_type"],
                    direct_passthrough=True)
