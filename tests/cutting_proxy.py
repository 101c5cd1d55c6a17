"""A TCP proxy on 127.0.0.1 that plays a bad link for artifact downloads.

It relays every connection to an upstream server. Over the connections that download an
artifact (the request names ``/artifacts/``) it counts the bytes sent to the client: when the
count passes one of ``cut_at`` (byte counts) it drops that connection, once per mark, as a link
that goes down mid-transfer. ``delay_s`` slows each 16 KiB relayed on those connections (a
slow link). ``ranges`` records the ``Range`` header of every artifact request (None when it had
none), so a test sees where each attempt asked to start.
"""

from __future__ import annotations

import contextlib
import re
import socket
import threading
import time

CHUNK_BYTES = 16 * 1024
RANGE_HEADER = re.compile(rb"\r\nRange: *([^\r\n]*)", re.IGNORECASE)


class CuttingProxy:
    def __init__(self, upstream_port: int, cut_at: tuple[int, ...] = (),
                 delay_s: float = 0.0) -> None:
        self.upstream_port = upstream_port
        self.cuts_left = sorted(cut_at)
        self.delay_s = delay_s
        self.delivered = 0
        self.cuts = 0
        self.ranges: list[str | None] = []
        self._lock = threading.Lock()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def close(self) -> None:
        self._closed = True
        self._listener.close()

    def __enter__(self) -> CuttingProxy:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            threading.Thread(target=self._relay, args=(client,), daemon=True).start()

    def _relay(self, client: socket.socket) -> None:
        try:
            upstream = socket.create_connection(("127.0.0.1", self.upstream_port))
        except OSError:
            client.close()
            return
        request = client.recv(65536)
        is_download = b"/artifacts/" in request.split(b"\r\n", 1)[0]
        if is_download:
            found = RANGE_HEADER.search(request)
            with self._lock:
                self.ranges.append(found.group(1).decode() if found else None)
        upstream.sendall(request)
        threading.Thread(target=self._pump, args=(client, upstream), daemon=True).start()
        try:
            while chunk := upstream.recv(CHUNK_BYTES):
                if is_download:
                    if self.delay_s:
                        time.sleep(self.delay_s)
                    if self._cut_now(len(chunk)):
                        return
                client.sendall(chunk)
        except OSError:
            pass
        finally:
            _close(client, upstream)

    def _cut_now(self, size: int) -> bool:
        with self._lock:
            self.delivered += size
            if self.cuts_left and self.delivered >= self.cuts_left[0]:
                self.cuts_left.pop(0)
                self.cuts += 1
                return True
        return False

    @staticmethod
    def _pump(source: socket.socket, target: socket.socket) -> None:
        try:
            while chunk := source.recv(CHUNK_BYTES):
                target.sendall(chunk)
        except OSError:
            pass
        finally:
            _close(source, target)


def _close(*sockets: socket.socket) -> None:
    for sock in sockets:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
        sock.close()
