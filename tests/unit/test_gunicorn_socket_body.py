"""An upload taken from gunicorn's socket by splice (real gunicorn parsing a real TCP
connection): what gunicorn already read of the body comes first, the body ends where its
Content-Length says, the next request on the connection parses as if gunicorn had read the body
itself, a body cut short is refused and leaves nothing, and a socket that cannot be spliced
takes the ordinary way."""

from __future__ import annotations

import hashlib
import os
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from gunicorn.config import Config
from gunicorn.http.parser import RequestParser

from api.artifacts import gunicorn_socket_body
from dispatcher.catalog.artifact_storage import LocalStorage, SocketBody
from dispatcher.errors import InvalidInput

NEXT_REQUEST = b"GET /api/v1/artifacts HTTP/1.1\r\nHost: x\r\n\r\n"


def post(body: bytes, declared: int | None = None) -> bytes:
    length = len(body) if declared is None else declared
    return (f"POST /api/v1/artifacts?name=a.bin HTTP/1.1\r\nHost: x\r\n"
            f"Content-Length: {length}\r\n\r\n").encode() + body


@contextmanager
def connection(sent: bytes, close_after: bool = False) -> Iterator[socket.socket]:
    """The server's side of a loopback TCP connection over which ``sent`` is being sent."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        client = socket.create_connection(listener.getsockname())
        server, _ = listener.accept()

    def send() -> None:
        client.sendall(sent)
        if close_after:
            client.shutdown(socket.SHUT_WR)

    sender = threading.Thread(target=send, daemon=True)
    sender.start()
    try:
        yield server
    finally:
        sender.join(30)
        client.close()
        server.close()


@pytest.fixture
def splices(monkeypatch) -> list[int]:
    counted: list[int] = []
    splice = os.splice

    def counting(*args, **kwargs):
        moved = splice(*args, **kwargs)
        counted.append(moved)
        return moved

    monkeypatch.setattr(os, "splice", counting)
    return counted


@pytest.mark.parametrize("size", [100, 8 * 1024 * 1024 + 3], ids=["in gunicorn's buffer",
                                                                    "mostly in the socket"])
def test_the_body_is_stored_whole_and_the_next_request_still_parses(tmp_path, splices, size):
    data = os.urandom(size)
    with connection(post(data) + NEXT_REQUEST) as server:
        parser = RequestParser(Config(), server, ("127.0.0.1", 1))
        request = next(parser)
        body = gunicorn_socket_body(request.body, size)
        assert isinstance(body, SocketBody)
        stored = LocalStorage(tmp_path).put(body, max_bytes=size)
        following = next(parser)
    assert stored.sha256 == hashlib.sha256(data).hexdigest() and stored.size == size
    assert (tmp_path / "objects" / stored.key[:2] / stored.key).read_bytes() == data
    assert (following.method, following.path) == ("GET", "/api/v1/artifacts")
    if size > 1024 * 1024:  # past what gunicorn reads ahead, the rest came by splice
        assert sum(splices) >= size - 1024 * 1024 - 8192


def test_a_body_cut_short_is_refused_and_leaves_no_file(tmp_path, splices):
    data = os.urandom(300_000)
    with connection(post(data, declared=4 * 1024 * 1024), close_after=True) as server:
        request = next(RequestParser(Config(), server, ("127.0.0.1", 1)))
        body = gunicorn_socket_body(request.body, 4 * 1024 * 1024)
        assert body is not None
        with pytest.raises(InvalidInput, match="bytes before its Content-Length"):
            LocalStorage(tmp_path).put(body, max_bytes=8 * 1024 * 1024)
    assert [path for path in Path(tmp_path).rglob("*") if path.is_file()] == []


def test_a_socket_with_a_timeout_is_read_the_ordinary_way(tmp_path):
    data = os.urandom(50_000)
    with connection(post(data)) as server:
        server.settimeout(30)  # splice would find it non-blocking
        request = next(RequestParser(Config(), server, ("127.0.0.1", 1)))
        assert gunicorn_socket_body(request.body, len(data)) is None
