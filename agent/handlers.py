"""Handler scripts for runHandler steps: found locally, or fetched, verified and cached.

Lookup order: the step's ``path`` directory when given (``"default"`` means the handler
directory, as in the AWS IoT Device Client); otherwise the handler directory; otherwise the
server, whose copy must match its sha256. Fetched handlers are cached (mode 700) and used from
the cache, after re-checking its hash, only while the server cannot be reached.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import shutil
import stat
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from agent.client import DeviceApi, ServerUnavailable
from agent.process import RunAs, StepSetupError
from agent.storage import atomic_write_bytes, atomic_write_json, ensure_private_dir, read_json

log = logging.getLogger(__name__)

HANDLER_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}\Z")
INTERPRETERS = {"bash": ("bash",), "python": ("python3",), "node": ("node",)}
DEFAULT_PATH = "default"


@dataclass(frozen=True)
class Handler:
    argv: tuple[str, ...]  # how to start it: the script, or its interpreter and the script
    default_args: tuple[str, ...] = ()

    @property
    def script(self) -> str:
        return self.argv[-1]


class HandlerStore:
    def __init__(self, handler_dir: Path, cache_dir: Path, api: DeviceApi | None = None) -> None:
        self.handler_dir = handler_dir
        self.cache_dir = cache_dir
        self._api = api

    def resolve(self, name: str, path: str | None = None) -> Handler:
        if not HANDLER_NAME.match(name):
            raise StepSetupError(f"handler name {name!r} is not a plain file name")
        if path and path != DEFAULT_PATH:
            handler = self._local(Path(path), name)
            if handler is None:
                raise StepSetupError(f"handler {name!r} not found in {path}")
            return handler
        handler = self._local(self.handler_dir, name)
        if handler is not None:
            return handler
        if self._api is None:
            raise StepSetupError(
                f"handler {name!r} not found in {self.handler_dir} and no server is configured"
            )
        return self._fetch(name)

    def _local(self, directory: Path, name: str) -> Handler | None:
        script = directory / name
        try:
            info = script.stat()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise StepSetupError(f"handler {script}: {exc.strerror}") from None
        if not stat.S_ISREG(info.st_mode):
            raise StepSetupError(f"handler {script} is not a regular file")
        if not os.access(script, os.X_OK):
            raise StepSetupError(f"handler {script} is not executable")
        if os.geteuid() == 0 and (info.st_mode & 0o022 or info.st_uid not in (0, os.geteuid())):
            # Anyone who can change a script that root runs is root.
            raise StepSetupError(
                f"handler {script} refused: it must be owned by root and not writable by "
                "group or others"
            )
        return Handler((str(script),))

    def _fetch(self, name: str) -> Handler:
        assert self._api is not None
        try:
            answer = self._api.fetch_handler(name)
        except ServerUnavailable as exc:
            cached = self._cached(name)
            if cached is None:
                raise StepSetupError(
                    f"handler {name!r}: server unreachable ({exc}) and no cached copy"
                ) from None
            log.warning("server unreachable, using cached handler name=%s", name)
            return cached
        if answer.status == 404:
            raise StepSetupError(
                f"handler {name!r} not found on the server or in {self.handler_dir}"
            )
        if not answer.ok:
            message = answer.body.get("message", "")
            raise StepSetupError(f"handler {name!r}: server answered {answer.status} {message}")
        return self._store(name, answer.body)

    def _store(self, name: str, body: dict) -> Handler:
        content = body.get("script_content")
        expected = str(body.get("script_sha256", "")).lower()
        script_type = body.get("script_type")
        default_args = body.get("default_args") or []
        if not isinstance(content, str) or script_type not in INTERPRETERS:
            raise StepSetupError(f"handler {name!r}: the server's answer is incomplete")
        if not isinstance(default_args, list):
            raise StepSetupError(f"handler {name!r}: default_args is not a list")
        data = content.encode()
        actual = hashlib.sha256(data).hexdigest()
        if actual != expected:
            raise StepSetupError(
                f"handler {name!r} refused: its content does not match its sha256 "
                f"(expected {expected or 'none'}, content hashes to {actual})"
            )
        script, meta_file = self._cache_files(name)
        meta = {"script_sha256": actual, "script_type": script_type,
                "default_args": [str(arg) for arg in default_args]}
        try:
            for directory in (self.cache_dir, script.parent, meta_file.parent):
                ensure_private_dir(directory)
            atomic_write_bytes(script, data, mode=0o700)
            atomic_write_json(meta_file, meta)
        except OSError as exc:
            raise StepSetupError(f"handler {name!r}: cannot store it: {exc}") from None
        log.info("handler fetched name=%s sha256=%s", name, actual)
        return Handler((*INTERPRETERS[script_type], str(script)), tuple(meta["default_args"]))

    def _cache_files(self, name: str) -> tuple[Path, Path]:
        """Where a fetched handler's script and its metadata are cached. Scripts and metadata
        live in directories of their own, so no handler name (``X.meta.json``) can stand for
        another handler's metadata."""
        return self.cache_dir / "scripts" / name, self.cache_dir / "meta" / f"{name}.json"

    def _cached(self, name: str) -> Handler | None:
        script, meta_file = self._cache_files(name)
        meta = read_json(meta_file)
        if meta is None or meta.get("script_type") not in INTERPRETERS:
            return None
        try:
            actual = hashlib.sha256(script.read_bytes()).hexdigest()
        except OSError:
            return None
        if actual != meta.get("script_sha256"):
            log.error("cached handler does not match its sha256; ignored name=%s", name)
            return None
        argv = (*INTERPRETERS[meta["script_type"]], str(script))
        return Handler(argv, tuple(meta.get("default_args") or ()))


def require_pinned_content(handler: Handler, sha256: str | None) -> None:
    """Refuse (StepSetupError) a handler whose script is not the content the job was executed
    with: the server pins each runHandler step to the handler's sha256 at execute."""
    if not sha256:
        return
    try:
        actual = hashlib.sha256(Path(handler.script).read_bytes()).hexdigest()
    except OSError as exc:
        raise StepSetupError(f"handler {handler.script}: {exc.strerror}") from None
    if actual != sha256:
        raise StepSetupError(
            f"handler {os.path.basename(handler.script)!r} refused: its content (sha256 "
            f"{actual}) is not the version this job was executed with (sha256 {sha256})"
        )


@contextmanager
def runnable_by(handler: Handler, run_as: RunAs | None) -> Iterator[list[str]]:
    """The argv that starts ``handler`` as ``run_as``.

    Handlers are private to root (mode 700), so a step that runs as another user gets its own
    copy of the script, in a directory only that user can read, removed afterwards.
    """
    if run_as is None:
        yield list(handler.argv)
        return
    directory = tempfile.mkdtemp(prefix="jobs-agent-handler-")
    try:
        copy = os.path.join(directory, os.path.basename(handler.script))
        shutil.copyfile(handler.script, copy)
        os.chmod(copy, 0o700)
        for path in (directory, copy):
            os.chown(path, run_as.uid, run_as.gid)
        yield [*handler.argv[:-1], copy]
    finally:
        shutil.rmtree(directory, ignore_errors=True)
