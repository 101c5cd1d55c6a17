"""Handler scripts for runHandler steps: found locally, or fetched, verified and cached.

Resolution follows the AWS IoT Device Client, made safe:

- ``path`` names a directory: the handler is that directory's file of that name;
- ``path: "default"``: the agent's handler directory, then the server;
- no ``path``: the handler directory, then the server, then an executable found on the agent's
  PATH (so ``{"handler": "echo"}`` runs echo, as on the Device Client);
- a handler the server knows is fetched and must match its sha256. Fetched handlers are cached
  (mode 700) and used from the cache, after re-checking its hash, only while the server cannot
  be reached; then nothing falls through to PATH (``reboot`` must not become /sbin/reboot);
- ``X.sh`` and ``X`` name the same handler where only one of them exists (the Device Client's
  samples say ``reboot.sh``, the server's library says ``reboot``); on PATH only the exact name;
- every local file, and every directory above it, must be owned by root or the agent's user,
  writable by no one else (a sticky directory such as /tmp excepted) and not a symlink: whoever
  can change a script the agent runs is the agent;
- with ``allow_local_handlers`` off, only server handlers run: no PATH, no ``path``, no handler
  directory;
- an agent that runs signed jobs only (``signing_public_key``) fetches from the server only the
  handlers a signed job pinned at execute (content, interpreter and arguments fixed); a step
  the server did not pin is local and is never fetched, whatever the server holds later.
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

from agent.process import RunAs, StepSetupError
from agent.server_api import DeviceApi, ServerUnavailable
from agent.storage import atomic_write_bytes, atomic_write_json, ensure_private_dir, read_json
from schemas.handlers import handler_names

log = logging.getLogger(__name__)

HANDLER_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}\Z")
INTERPRETERS = {"bash": ("bash",), "python": ("python3",), "node": ("node",)}
DEFAULT_PATH = "default"


@dataclass(frozen=True)
class Handler:
    argv: tuple[str, ...]  # how to start it: the script, or its interpreter and the script
    default_args: tuple[str, ...] = ()
    # A system executable found on PATH: anyone may run it, so no private copy is needed.
    system: bool = False

    @property
    def script(self) -> str:
        return self.argv[-1]


@dataclass(eq=False)
class HandlerStore:
    """Handlers by name: local ones from ``handler_dir``, the server's (through ``api``) cached
    in ``cache_dir``."""

    handler_dir: Path
    cache_dir: Path
    api: DeviceApi | None = None
    allow_local: bool = True
    fetch_pinned_only: bool = False

    def resolve(self, name: str, path: str | None = None, pinned: bool = False) -> Handler:
        """The handler a step names; ``pinned``: the server pinned it at execute."""
        if not HANDLER_NAME.match(name):
            raise StepSetupError(f"handler name {name!r} is not a plain file name")
        if path and path != DEFAULT_PATH:
            if not self.allow_local:
                raise StepSetupError(
                    f"handler {name!r} in {path} refused: this agent runs server handlers only "
                    "(allow_local_handlers is off)"
                )
            handler = self._local(Path(path), name)
            if handler is None:
                raise StepSetupError(f"handler {name!r} not found in {path}")
            return handler
        fetch = self.api is not None and (pinned or not self.fetch_pinned_only)
        if not fetch and not self.allow_local:
            raise StepSetupError(
                f"handler {name!r} refused: the signed job does not pin it (the server did not "
                "hold it at execute), so it may run only from this device, and this agent runs "
                "server handlers only (allow_local_handlers is off)")
        if self.allow_local:
            handler = self._local(self.handler_dir, name)
            if handler is not None:
                return handler
        if fetch:
            handler = self._fetch(name)
            if handler is not None:
                return handler
        if path == DEFAULT_PATH or not self.allow_local:
            raise self._not_found(name, fetch, searched_path=False)
        return self._on_search_path(name, fetch)

    def _not_found(self, name: str, fetched: bool, searched_path: bool) -> StepSetupError:
        places = [str(self.handler_dir)] if self.allow_local else []
        if self.api is None:
            places.append("no server (none configured)")
        elif fetched:
            places.append("the server")
        else:
            places.append("not the server (the signed job does not pin it)")
        if searched_path:
            places.append("PATH")
        return StepSetupError(f"handler {name!r} not found; looked in {', '.join(places)}")

    def _local(self, directory: Path, name: str) -> Handler | None:
        """The handler ``name`` (or its ".sh" twin) in ``directory``, checked; None if absent."""
        if not directory.is_absolute():
            raise StepSetupError(f"handler path {str(directory)!r} must be an absolute path")
        for candidate in handler_names(name):
            script = directory / candidate
            if os.path.lexists(script):
                check_trusted_file(script)
                return Handler((str(script),))
        return None

    def _on_search_path(self, name: str, fetched: bool) -> Handler:
        found = shutil.which(name)  # the agent's own PATH
        if found is None:
            raise self._not_found(name, fetched, searched_path=True)
        # PATH entries are often symlinks (/bin -> usr/bin): what must be trusted is the
        # directory the name was found in and the file it leads to.
        check_trusted_file(Path(os.path.realpath(found)))
        check_trusted_directories(Path(os.path.realpath(os.path.dirname(found))))
        return Handler((found,), system=True)

    def _fetch(self, name: str) -> Handler | None:
        """The server's handler ``name`` (or its ".sh" twin), verified; None if it has neither."""
        assert self.api is not None
        for candidate in handler_names(name):
            try:
                answer = self.api.fetch_handler(candidate)
            except ServerUnavailable as exc:
                cached = next((c for c in map(self._cached, handler_names(name)) if c), None)
                if cached is None:
                    raise StepSetupError(
                        f"handler {name!r}: server unreachable ({exc}) and no cached copy"
                    ) from None
                log.warning("server unreachable, using cached handler name=%s", name)
                return cached
            if answer.status == 404:
                continue
            if not answer.ok:
                message = answer.body.get("message", "")
                raise StepSetupError(
                    f"handler {candidate!r}: server answered {answer.status} {message}"
                )
            return self._store(candidate, answer.body)
        return None

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


def _no_link_stat(path: Path, what: str) -> os.stat_result:
    """``path``'s own status (``what`` names it in the error): refused when it cannot be read
    or is a symlink."""
    try:
        info = os.lstat(path)
    except OSError as exc:
        raise StepSetupError(f"{what} {path}: {exc.strerror}") from None
    if stat.S_ISLNK(info.st_mode):
        raise StepSetupError(f"{what} {path} refused: it is a symlink")
    return info


def check_trusted_file(script: Path) -> None:
    """Refuse a handler file that someone other than root or the agent's user could change."""
    info = _no_link_stat(script, "handler")
    if not stat.S_ISREG(info.st_mode):
        raise StepSetupError(f"handler {script} is not a regular file")
    if not os.access(script, os.X_OK):
        raise StepSetupError(f"handler {script} is not executable")
    if info.st_mode & 0o022 or info.st_uid not in (0, os.geteuid()):
        raise StepSetupError(
            f"handler {script} refused: it must be owned by root or the agent's user and not "
            "writable by group or others"
        )
    check_trusted_directories(script.parent)


def check_trusted_directories(directory: Path) -> None:
    """Refuse ``directory`` when it or a directory above it is a symlink, or can be changed by
    someone other than root or the agent's user (a sticky directory, like /tmp, is fine: no one
    can replace what another user owns in it)."""
    for current in (directory, *directory.parents):
        info = _no_link_stat(current, "handler directory")
        shared = info.st_mode & 0o022 and not info.st_mode & stat.S_ISVTX
        if shared or info.st_uid not in (0, os.geteuid()):
            raise StepSetupError(
                f"handler directory {current} refused: it must be owned by root or the agent's "
                "user and not writable by group or others"
            )

def as_pinned(handler: Handler, script_type: str) -> Handler:
    """``handler`` started by the interpreter its step was pinned with at execute, without its
    default arguments (the step's pinned ``args`` are the ones it runs with)."""
    if script_type not in INTERPRETERS:
        raise StepSetupError(f"handler {handler.script}: unknown script type {script_type!r}")
    return Handler((*INTERPRETERS[script_type], handler.script), system=handler.system)


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
    if run_as is None or handler.system:
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
