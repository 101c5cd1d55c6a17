"""Durable local files: written whole or not at all, and on disk before we act on them.

A device can lose power at any moment; a file written here is either the old version or the
new one after a crash, never half of each.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO

log = logging.getLogger(__name__)


def ensure_private_dir(path: Path) -> Path:
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    return path


def atomic_write_bytes(path: Path, data: bytes, mode: int = 0o600) -> None:
    """Write ``data`` to a temporary file, fsync it, rename it over ``path``, fsync the dir."""
    atomic_write(path, lambda file: file.write(data), mode)


def atomic_write(
    path: Path, fill: Callable[[IO[bytes]], object], mode: int = 0o600,
    owner: tuple[int, int] | None = None,
) -> None:
    """``fill`` a temporary file beside ``path`` (then given ``mode`` and ``owner``, a uid and
    gid), fsync it, rename it over ``path`` and fsync the directory."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as file:
            fill(file)
            file.flush()
            os.fchmod(file.fileno(), mode)
            if owner is not None:
                os.fchown(file.fileno(), *owner)
            os.fsync(file.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def atomic_write_json(path: Path, data: object) -> None:
    atomic_write_bytes(path, json.dumps(data, sort_keys=True).encode())


def read_json(path: Path) -> dict | None:
    """The object in ``path``; None when absent. A corrupt file is set aside, not fatal."""
    try:
        data = json.loads(path.read_bytes())
        if not isinstance(data, dict):
            raise ValueError("not a JSON object")
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        aside = path.with_name(path.name + ".corrupt")
        log.error("unreadable state file path=%s error=%s moved_to=%s", path, exc, aside)
        os.replace(path, aside)
        return None
    return data


def remove(path: Path) -> None:
    """Delete ``path`` and make the deletion durable."""
    path.unlink(missing_ok=True)
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
