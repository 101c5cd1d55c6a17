"""An upload written through the buffered file starts its writeback step by step, each range
already handed to the file when it is started, and ends whole."""

from __future__ import annotations

import hashlib
import io
import os

from dispatcher.catalog import artifact_storage
from dispatcher.catalog.artifact_storage import LocalStorage


class Trickle(io.RawIOBase):
    """A body that arrives a little at a time (as a slow client's would)."""

    def __init__(self, data: bytes, piece: int) -> None:
        self.data, self.piece, self.position = data, piece, 0

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        piece = self.data[self.position:self.position + min(size, self.piece)]
        self.position += len(piece)
        return piece


def test_each_writeback_starts_on_bytes_already_in_the_file(tmp_path, monkeypatch):
    started = []

    def start_writeback(descriptor: int, offset: int, length: int, flags: int) -> None:
        started.append((offset, length, os.fstat(descriptor).st_size))

    monkeypatch.setattr(artifact_storage, "_START_WRITEBACK", start_writeback)
    monkeypatch.setattr(artifact_storage, "WRITEBACK_STEP_BYTES", 10_000)
    data = os.urandom(123_456)
    stored = LocalStorage(tmp_path).put(Trickle(data, 1000), max_bytes=len(data))

    assert stored.sha256 == hashlib.sha256(data).hexdigest() and stored.size == len(data)
    assert len(started) == 12
    position = 0
    for offset, length, in_file in started:
        assert offset == position and length >= 10_000
        assert in_file >= offset + length  # flushed from the writer's buffer first
        position = offset + length
