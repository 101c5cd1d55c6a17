"""Bounded output: the last N bytes of a stream, however much the stream writes."""

from __future__ import annotations


class OutputTail:
    """Keeps the last ``cap_bytes`` bytes written; older bytes are dropped as new ones arrive."""

    def __init__(self, cap_bytes: int) -> None:
        self.cap_bytes = cap_bytes
        self.total_bytes = 0
        self.total_newlines = 0
        self._ends_in_newline = True
        self._buffer = bytearray()

    def write(self, data: bytes) -> None:
        if not data:
            return
        self.total_bytes += len(data)
        self.total_newlines += data.count(b"\n")
        self._ends_in_newline = data.endswith(b"\n")
        if len(data) >= self.cap_bytes:
            self._buffer[:] = data[len(data) - self.cap_bytes:]
            return
        self._buffer += data
        excess = len(self._buffer) - self.cap_bytes
        if excess > 0:
            del self._buffer[:excess]

    def mark(self) -> tuple[int, int]:
        """Where the stream stands now, for ``lines_since``."""
        return self.total_bytes, self.total_newlines

    def lines_since(self, mark: tuple[int, int]) -> int:
        """Lines written since ``mark``; an unterminated last line counts as a line."""
        total_bytes, total_newlines = mark
        if self.total_bytes == total_bytes:
            return 0
        return self.total_newlines - total_newlines + (0 if self._ends_in_newline else 1)

    @property
    def truncated(self) -> bool:
        return self.total_bytes > len(self._buffer)

    def __len__(self) -> int:
        return len(self._buffer)

    def text(self) -> str:
        """The kept bytes as text; a character cut in half by the cap becomes U+FFFD."""
        return self._buffer.decode("utf-8", errors="replace")
