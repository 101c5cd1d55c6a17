"""Running one step's process: no shell, its own process group, bounded output, a deadline.

The process starts in a new session, so it and everything it spawns share one process group;
a timeout or a cancel signals the whole group (SIGTERM, then SIGKILL after a grace period), and
nothing a step started in the foreground outlives it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import pwd
import selectors
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from agent.output import OutputTail
from agent.server_api import AgentError

log = logging.getLogger(__name__)

POLL_S = 0.2
KILL_GRACE_S = 3.0
# After the step's main process exits, how long background children may keep its pipes open.
PIPE_DRAIN_S = 1.0
READ_CHUNK_BYTES = 64 * 1024


class StepSetupError(AgentError):
    """A step cannot be started (unknown user, refused handler, …); the message says why."""


@dataclass(frozen=True)
class RunAs:
    name: str
    uid: int
    gid: int
    groups: tuple[int, ...]
    home: str


@dataclass(frozen=True)
class ProcessOutcome:
    exit_code: int | None  # 128 + N when killed by signal N, as shells report it
    duration_s: float
    timed_out: bool = False
    interrupted: bool = False
    error: str | None = None  # the process could not be started


def resolve_user(name: str) -> RunAs | None:
    """The user a step runs as, or None when that is the agent's own user."""
    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        raise StepSetupError(f"runAsUser: user {name!r} does not exist on this device") from None
    if entry.pw_uid == os.geteuid():
        return None
    if os.geteuid() != 0:
        raise StepSetupError(
            f"runAsUser: cannot run as {name!r}: the agent is not running as root"
        )
    groups = tuple(os.getgrouplist(name, entry.pw_gid))
    return RunAs(name, entry.pw_uid, entry.pw_gid, groups, entry.pw_dir)


def run_process(
    argv: Sequence[str],
    *,
    stdout: OutputTail,
    stderr: OutputTail,
    timeout_s: float,
    interrupt: threading.Event,
    env: Mapping[str, str],
    run_as: RunAs | None = None,
    on_started: Callable[[int], None] | None = None,
) -> ProcessOutcome:
    """Run ``argv`` to its end, its deadline, or ``interrupt``; output goes to the tails.

    ``on_started(pid)`` is called once the process runs (to record it for crash recovery).
    """
    started = time.monotonic()
    env = dict(env)
    user_args: dict = {}
    if run_as is not None:
        env.update(HOME=run_as.home, USER=run_as.name, LOGNAME=run_as.name)
        user_args = {"user": run_as.uid, "group": run_as.gid, "extra_groups": list(run_as.groups)}
    try:
        proc = subprocess.Popen(
            list(argv), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, start_new_session=True, env=env, **user_args,
        )
    except FileNotFoundError:
        return ProcessOutcome(127, 0.0, error=f"command not found: {argv[0]}")
    except PermissionError:
        return ProcessOutcome(126, 0.0, error=f"permission denied: {argv[0]}")
    except (OSError, subprocess.SubprocessError) as exc:
        return ProcessOutcome(126, 0.0, error=f"cannot start {argv[0]}: {exc}")
    log.debug("step process started pid=%d argv0=%s", proc.pid, argv[0])
    if on_started is not None:
        try:
            on_started(proc.pid)
        except BaseException:
            _signal_group(proc.pid, signal.SIGKILL)
            proc.communicate()
            raise
    outcome = _supervise(proc, stdout, stderr, started + timeout_s, interrupt)
    return ProcessOutcome(
        _exit_code(proc.returncode), time.monotonic() - started,
        timed_out=outcome == "timeout", interrupted=outcome == "interrupted",
    )


def _supervise(
    proc: subprocess.Popen,
    stdout: OutputTail,
    stderr: OutputTail,
    deadline: float,
    interrupt: threading.Event,
) -> str | None:
    """Pump output until the process ends; return "timeout" or "interrupted" if we stopped it."""
    selector = selectors.DefaultSelector()
    selector.register(proc.stdout, selectors.EVENT_READ, stdout)  # type: ignore[arg-type]
    selector.register(proc.stderr, selectors.EVENT_READ, stderr)  # type: ignore[arg-type]
    stopped_for: str | None = None
    terminated_at = exited_at = None
    killed = False
    try:
        while True:
            now = time.monotonic()
            if proc.poll() is not None:
                exited_at = exited_at or now
                if not selector.get_map() or now - exited_at >= PIPE_DRAIN_S:
                    break
            elif stopped_for is None:
                if interrupt.is_set() or now >= deadline:
                    stopped_for = "interrupted" if interrupt.is_set() else "timeout"
                    log.info("stopping step process pid=%d reason=%s", proc.pid, stopped_for)
                    _signal_group(proc.pid, signal.SIGTERM)
                    terminated_at = now
            elif not killed and now - terminated_at >= KILL_GRACE_S:  # type: ignore[operator]
                _signal_group(proc.pid, signal.SIGKILL)
                killed = True
            if selector.get_map():
                for key, _ in selector.select(POLL_S):
                    _pump(selector, key)
            else:
                _wait_quietly(proc, POLL_S)
    except BaseException:
        stopped_for = stopped_for or "interrupted"
        raise
    finally:
        if stopped_for is not None:
            # Children that ignored SIGTERM or outlived their parent die with the group.
            _signal_group(proc.pid, signal.SIGKILL)
        selector.close()
        for pipe in (proc.stdout, proc.stderr):
            pipe.close()  # type: ignore[union-attr]
        proc.wait()
    return stopped_for


def process_start_ticks(pid: int) -> int | None:
    """When ``pid`` started (clock ticks since boot): tells it from a later process with its pid."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return int(fields[19])
    except (OSError, IndexError, ValueError):
        return None


def kill_process_group(pgid: int, start_ticks: int | None) -> bool:
    """SIGKILL the group led by ``pgid`` if its leader is still the process that started then."""
    if start_ticks is None or process_start_ticks(pgid) != start_ticks:
        return False
    _signal_group(pgid, signal.SIGKILL)
    return True


def _pump(selector: selectors.BaseSelector, key: selectors.SelectorKey) -> None:
    data = os.read(key.fd, READ_CHUNK_BYTES)
    if data:
        key.data.write(data)
    else:
        selector.unregister(key.fileobj)


def _wait_quietly(proc: subprocess.Popen, timeout_s: float) -> None:
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout_s)


def _signal_group(pgid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signum)


def _exit_code(returncode: int | None) -> int | None:
    if returncode is None:
        return None
    return 128 - returncode if returncode < 0 else returncode
