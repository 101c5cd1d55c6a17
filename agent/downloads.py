"""Resumable, verified downloads of the artifacts a job pinned.

A ``download-file`` step whose URL is ``artifact:ID`` is carried out by the agent itself, not
by the handler script: the agent asks the server (the API, with this device's token; never a
storage host, and never following a redirect) for the artifact the job pinned at execute
(``schemas.artifacts``), and

- keeps what it has in ``STATE_DIR/downloads/<sha256>.part``, and what it knows about it
  (the artifact, its ETag) beside it, so a download cut by the network or by the agent's own
  restart goes on from there: it asks for the bytes it lacks (``Range``, ``If-Range``);
- checks size and sha256 before the file appears at its destination: written beside it,
  fsynced, given the mode (0644) and, with ``runAsUser``, that user as owner, then renamed over
  it, so a failed or tampered download never replaces what was there;
- reports its progress through the job's progress reports;
- retries a cut, a 5xx, a 408 or a 429 after a jittered, growing pause, at most
  ``max_tries`` times in a row without progress; any other 4xx ends it at once; a transfer
  slower than ``min_bytes_per_s`` over ``stall_window_s`` is cut and resumed;
- stops between chunks when the job is canceled or the agent stops (the part is kept).

Standard library only, Python 3.9.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import logging
import os
import random
import re
import shutil
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Optional

from agent import __version__
from agent.process import RunAs
from agent.server_api import AgentError
from agent.storage import atomic_write, atomic_write_json, ensure_private_dir, read_json
from schemas.artifacts import (
    DOWNLOAD_HANDLER,
    SHA256_PATTERN,
    artifact_pin,
    artifact_reference,
)
from schemas.handlers import handler_names
from schemas.job_document import RUN_HANDLER

log = logging.getLogger(__name__)

CHUNK_BYTES = 64 * 1024
PROGRESS_EVERY_S = 2.0
STALE_PART_S = 7 * 24 * 3600
# Answers worth asking again: the server is busy, overloaded or timed out.
RETRYABLE_STATUSES = frozenset({408, 429})
CONTENT_RANGE = re.compile(r"^bytes (\d+)-(\d+)/(\d+|\*)$")


class DownloadFailed(AgentError):
    """The download ended without the file; the message is the step's failure reason."""


class DownloadStopped(AgentError):
    """The job was canceled or the agent is stopping; what was fetched is kept."""


class _TryAgain(Exception):
    """This attempt ended early (a cut, a stall, a busy server); a later one may finish."""


@dataclass(frozen=True)
class DownloadSettings:
    max_tries: int = 8
    first_pause_s: float = 1.0
    max_pause_s: float = 60.0
    read_timeout_s: float = 30.0
    min_bytes_per_s: int = 1024
    stall_window_s: float = 60.0


def is_agent_download(step: dict) -> bool:
    """Whether ``step`` is a ``download-file`` step the agent carries out itself: its URL is
    an artifact, ``https://`` or ``http://``."""
    if step.get("type") != RUN_HANDLER:
        return False
    step_input = step.get("input") or {}
    args = step_input.get("args") or []
    return (DOWNLOAD_HANDLER in handler_names(str(step_input.get("handler", "")))
            and bool(args) and isinstance(args[0], str)
            and (artifact_reference(args[0]) is not None
                 or args[0].startswith(("https://", "http://"))))


@dataclass(frozen=True)
class Target:
    """What a download fetches: ``source`` (``artifact:ID`` or the URL), named ``label`` in
    messages; ``sha256`` and ``size`` when known before (an artifact's pin; a URL's SHA256
    argument). Its part file is kept under ``key``."""

    key: str
    source: str
    label: str
    sha256: Optional[str] = None  # noqa: UP045 - evaluated on Python 3.9
    size: Optional[int] = None  # noqa: UP045 - evaluated on Python 3.9


@dataclass(frozen=True)
class ArtifactSource:
    """Where artifact steps download from: the device's server (``DeviceApi.open_artifact``)."""

    downloader: Downloader
    open_artifact: Callable[[str, dict], http.client.HTTPResponse]


# Opens the download at a byte offset: (offset, the ETag it must still have or None) to an
# HTTP answer (urllib.error.HTTPError for 3xx, 4xx and 5xx).
Opener = Callable[[int, Optional[str]], http.client.HTTPResponse]  # noqa: UP045 - evaluated on Python 3.9
ProgressListener = Callable[[dict], None]


class Downloader:
    def __init__(self, state_dir: Path, settings: DownloadSettings = DownloadSettings()) -> None:
        self.directory = state_dir / "downloads"
        self.settings = settings

    def fetch(
        self, open_at: Opener, target: Target, destination: Path, interrupt: threading.Event,
        on_progress: ProgressListener | None = None, owner: RunAs | None = None,
    ) -> str:
        """Download ``target`` to ``destination``; answers what was done. DownloadFailed with
        the reason, DownloadStopped when ``interrupt`` is set."""
        if not destination.is_absolute() or not destination.parent.is_dir():
            raise DownloadFailed(f"destination {destination} must be an absolute path in an "
                                 "existing directory")
        if owner is not None and not _writable_by(destination.parent, owner):
            raise DownloadFailed(f"runAsUser {owner.name} may not write to "
                                 f"{destination.parent}")
        ensure_private_dir(self.directory)
        self._forget_stale()
        part = self.directory / f"{target.key}.part"
        meta_path = self.directory / f"{target.key}.json"
        meta = read_json(meta_path) or {}
        if meta.get("source") != target.source or not part.exists():
            meta = {"source": target.source, "etag": None, "size": target.size,
                    "pinned_size": target.size is not None}
            part.write_bytes(b"")
            atomic_write_json(meta_path, meta)
        tries, reported = 0, _Reporter(on_progress, meta.get("size"))
        while True:
            if interrupt.is_set():
                raise DownloadStopped("download stopped")
            have = part.stat().st_size
            size = meta.get("size")
            if size is not None and have > size:
                part.write_bytes(b"")
                have = 0
            if size is not None and have == size and (have or meta.get("complete")):
                break
            try:
                if self._attempt(open_at, part, meta, meta_path, interrupt, reported):
                    break
            except _TryAgain as exc:
                if part.stat().st_size > have:
                    tries = 0  # it moved on: only attempts that bring nothing count
                tries += 1
                if tries >= self.settings.max_tries:
                    raise DownloadFailed(f"download of {target.label} gave up after "
                                         f"{tries} tries: {exc}") from None
                pause = min(self.settings.max_pause_s,
                            self.settings.first_pause_s * 2 ** (tries - 1))
                pause *= random.uniform(0.5, 1.0)
                log.warning("download interrupted source=%s have=%d try=%d pause_s=%.1f "
                            "error=%s", target.label, part.stat().st_size, tries, pause, exc)
                if interrupt.wait(pause):
                    raise DownloadStopped("download stopped") from None
        digest = self._verify(part, meta_path, target)
        _install(part, destination, owner)
        part.unlink()
        meta_path.unlink()
        size = destination.stat().st_size
        reported.size = size
        reported.done()
        return f"downloaded {target.label} to {destination} ({size} bytes, sha256 {digest})"

    def _forget_stale(self) -> None:
        """Drop what downloads left untouched for ``STALE_PART_S`` (a job canceled mid-way
        keeps its part, for a retry to resume; not for ever)."""
        now = time.time()
        for path in self.directory.iterdir():
            with contextlib.suppress(OSError):
                if now - path.stat().st_mtime > STALE_PART_S:
                    path.unlink()

    def _attempt(
        self, open_at: Opener, part: Path, meta: dict, meta_path: Path,
        interrupt: threading.Event, reported: _Reporter,
    ) -> bool:
        """One request for what is missing; True when the file is whole (its size known only
        from the end of an answer without a length)."""
        have = part.stat().st_size
        try:
            answer = open_at(have, meta.get("etag") if have else None)
        except urllib.error.HTTPError as exc:
            exc.close()
            if exc.code == 416 and have:
                part.write_bytes(b"")  # what we hold is not a prefix of the file
                raise _TryAgain("HTTP 416: starting again") from None
            if exc.code >= 500 or exc.code in RETRYABLE_STATUSES:
                raise _TryAgain(f"HTTP {exc.code}") from None
            raise DownloadFailed(f"download refused: HTTP {exc.code} {exc.reason}") from None
        except (OSError, http.client.HTTPException) as exc:
            raise _TryAgain(str(getattr(exc, "reason", exc))) from None
        with answer:
            status = getattr(answer, "status", 200)
            if status == 206:
                found = CONTENT_RANGE.match(answer.headers.get("Content-Range", ""))
                if found is None or int(found.group(1)) != have:
                    part.write_bytes(b"")
                    raise _TryAgain("answer's Content-Range is not the range asked for")
                mode, total = "ab", found.group(3)
            else:
                # The whole file: the server has another one, or ignored the range.
                mode, total = "wb", answer.headers.get("Content-Length")
            learned: dict[str, object] = {"etag": answer.headers.get("ETag")}
            if not meta.get("pinned_size") and (mode == "wb" or meta.get("size") is None):
                # Its size as this answer says (a new whole answer may be a new file).
                learned.update(size=int(total) if total and total.isdigit() else None,
                               complete=False)
            if any(meta.get(name) != value for name, value in learned.items()):
                meta.update(learned)
                atomic_write_json(meta_path, meta)
            reported.size = meta.get("size")
            with open(part, mode) as file:
                self._copy(answer, file, meta.get("size"), interrupt, reported)
                file.flush()
                os.fsync(file.fileno())
                if meta.get("size") is None:  # no length said: the end of the answer is all
                    meta.update(size=file.tell(), complete=True)
                    atomic_write_json(meta_path, meta)
        return part.stat().st_size == meta["size"]

    def _copy(self, answer: http.client.HTTPResponse, file: IO[bytes], size: int | None,
              interrupt: threading.Event, reported: _Reporter) -> None:
        window_start, window_bytes = time.monotonic(), 0
        while True:
            if interrupt.is_set():
                raise DownloadStopped("download stopped")
            try:
                chunk = answer.read(CHUNK_BYTES)
            except (OSError, http.client.HTTPException) as exc:
                raise _TryAgain(f"connection lost: {exc}") from None
            if not chunk:
                if size is not None and file.tell() < size:
                    raise _TryAgain(f"connection closed at {file.tell()} of {size} bytes")
                return
            file.write(chunk)
            if size is not None and file.tell() > size:
                raise DownloadFailed(f"server sent more than the file's {size} bytes")
            reported.at(file.tell())
            window_bytes += len(chunk)
            elapsed = time.monotonic() - window_start
            if elapsed >= self.settings.stall_window_s:
                if window_bytes < self.settings.min_bytes_per_s * elapsed:
                    raise _TryAgain(f"stalled below {self.settings.min_bytes_per_s} bytes/s")
                window_start, window_bytes = time.monotonic(), 0

    def _verify(self, part: Path, meta_path: Path, target: Target) -> str:
        """The part's sha256, once its size and sha256 are what ``target`` says (when it says);
        DownloadFailed, and the part gone, otherwise."""
        size = part.stat().st_size
        digest = hashlib.sha256()
        with open(part, "rb") as file:
            for chunk in iter(lambda: file.read(1024 * 1024), b""):
                digest.update(chunk)
        problem = None
        if target.size is not None and size != target.size:
            problem = (f"size mismatch for {target.label}: expected {target.size} bytes, "
                       f"got {size}")
        elif target.sha256 is not None and digest.hexdigest() != target.sha256:
            problem = (f"sha256 mismatch for {target.label}: expected {target.sha256}, got "
                       f"{digest.hexdigest()}")
        if problem is None:
            return digest.hexdigest()
        part.unlink()
        meta_path.unlink()
        raise DownloadFailed(problem)


def _writable_by(directory: Path, user: RunAs) -> bool:
    """Whether ``user`` may create files in ``directory``: the agent writes for a step that
    runs as another user, and must not let it write where that user could not."""
    status = directory.stat()
    if status.st_uid == user.uid:
        return bool(status.st_mode & 0o200)
    if status.st_gid == user.gid or status.st_gid in user.groups:
        return bool(status.st_mode & 0o020)
    return bool(status.st_mode & 0o002)


def _install(part: Path, destination: Path, owner: RunAs | None) -> None:
    """Put the verified file at ``destination`` whole or not at all."""
    with open(part, "rb") as source:
        atomic_write(destination, lambda target: shutil.copyfileobj(source, target, 1024 * 1024),
                     0o644, (owner.uid, owner.gid) if owner is not None else None)


class _Reporter:
    """Progress, at most every ``PROGRESS_EVERY_S``."""

    def __init__(self, listener: ProgressListener | None, size: int | None) -> None:
        self.listener = listener
        self.size = size
        self.last = 0.0

    def at(self, have: int) -> None:
        now = time.monotonic()
        if self.listener is not None and now - self.last >= PROGRESS_EVERY_S:
            self.last = now
            self.listener({"bytes": have, "size": self.size,
                           "percent": round(100 * have / self.size, 1) if self.size else None})

    def done(self) -> None:
        if self.listener is not None:
            self.listener({"bytes": self.size, "size": self.size, "percent": 100})


def download_step(
    downloader: Downloader, open_artifact: Callable[[str, dict], http.client.HTTPResponse],
    step: dict, interrupt: threading.Event, on_progress: ProgressListener | None,
    owner: RunAs | None,
) -> str:
    """Carry out a ``download-file`` step the agent downloads itself (``is_agent_download``):
    ``URL DESTINATION [SHA256]``, the URL an artifact the job pinned, or a web address."""
    step_input = step["input"]
    args = step_input["args"]
    if len(args) < 2:
        raise DownloadFailed("download-file needs a DESTINATION after the URL")
    if artifact_reference(args[0]) is None:
        return _download_url(downloader, args, interrupt, on_progress, owner)
    pin = artifact_pin(step_input)
    if pin is None or args[0] != f"artifact:{pin['id']}":
        raise DownloadFailed(f"{args[0]} was not pinned at execute; execute the job again")
    target = Target(pin["sha256"], args[0], f"artifact {pin['id']}", pin["sha256"],
                    pin["size"])

    def open_at(offset: int, etag: str | None) -> http.client.HTTPResponse:
        return open_artifact(pin["id"], _range_headers(offset, etag))

    return downloader.fetch(open_at, target, Path(args[1]), interrupt, on_progress, owner)


def _range_headers(offset: int, etag: str | None) -> dict[str, str]:
    headers = {"Range": f"bytes={offset}-"} if offset else {}
    if offset and etag:
        headers["If-Range"] = etag
    return headers


class _NoDowngrade(urllib.request.HTTPRedirectHandler):
    """Redirects are followed (at most 5), but never from https to anything else."""

    max_redirections = 5

    def redirect_request(self, req, fp, code, msg, headers, newurl):  # noqa: ANN001
        if req.full_url.startswith("https://") and not newurl.startswith("https://"):
            raise urllib.error.HTTPError(newurl, 400, "redirect from https refused", headers,
                                         fp)
        return super().redirect_request(req, fp, code, msg, headers, newurl)


def _download_url(
    downloader: Downloader, args: list, interrupt: threading.Event,
    on_progress: ProgressListener | None, owner: RunAs | None,
) -> str:
    """A web address: no token of ours goes with it; checked against SHA256 when given."""
    url = str(args[0])
    expected = str(args[2]).strip().lower() if len(args) > 2 and args[2] else None
    if expected is not None and not SHA256_PATTERN.match(expected):
        raise DownloadFailed("download-file: SHA256 must be 64 hex digits")
    parts = urllib.parse.urlsplit(url)
    # A password in the URL stays out of reasons and logs.
    label = urllib.parse.urlunsplit(parts._replace(netloc=parts.hostname or "")) if (
        parts.username or parts.password) else url
    key = expected or hashlib.sha256(url.encode()).hexdigest()
    opener = urllib.request.build_opener(_NoDowngrade)

    def open_at(offset: int, etag: str | None) -> http.client.HTTPResponse:
        request = urllib.request.Request(url, headers={
            "User-Agent": f"jobs-agent/{__version__}", **_range_headers(offset, etag)})
        return opener.open(request, timeout=downloader.settings.read_timeout_s)

    return downloader.fetch(open_at, Target(key, url, label, expected), Path(args[1]),
                            interrupt, on_progress, owner)
