"""Noticing, while a long step runs, that the server ended the job (a forced cancel).

Progress reports learn it between steps; this watch learns it during a step. It polls
``jobs/next`` cheaply: while the server still hands out our execution, nothing changed. When
it hands out something else, or when MQTT says "canceled", a progress report confirms it: the
server refuses it with 409 and the status that ended the job.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from agent.reporter import Reporter
from agent.server_api import AgentError, DeviceApi, ServerUnavailable

log = logging.getLogger(__name__)


@dataclass
class JobControl:
    """Stops a running job: the server ended it, or the agent itself is stopping."""

    interrupt: threading.Event = field(default_factory=threading.Event)
    ended_as: str | None = None
    stopping: bool = False

    def end(self, server_status: str) -> None:
        self.ended_as = server_status
        self.interrupt.set()

    def stop(self) -> None:
        self.stopping = True
        self.interrupt.set()


@dataclass(eq=False)
class CancelWatch:
    """Watches one execution of a job (``job_id``, ``execution_number``) every
    ``interval_s()`` seconds while ``control`` runs it."""

    api: DeviceApi
    reporter: Reporter
    job_id: str
    execution_number: int
    control: JobControl
    interval_s: Callable[[], float]
    progress_body: Callable[[], dict]
    _wake: threading.Event = field(default_factory=threading.Event, init=False)
    _confirm_now: bool = field(default=False, init=False)
    _closed: bool = field(default=False, init=False)

    def __post_init__(self) -> None:
        self._thread = threading.Thread(target=self._watch, name="cancel-watch", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def notify_canceled(self) -> None:
        """The server said (over MQTT) that this job was canceled: check at once."""
        self._confirm_now = True
        self._wake.set()

    def close(self) -> None:
        self._closed = True
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join()

    def _watch(self) -> None:
        while True:
            self._wake.wait(self.interval_s())
            self._wake.clear()
            if self._closed or self.control.interrupt.is_set():
                return
            try:
                self._check()
            except (AgentError, OSError) as exc:
                log.warning("cancel check failed job_id=%s error=%s", self.job_id, exc)

    def _check(self) -> None:
        confirm, self._confirm_now = self._confirm_now, False
        if not confirm:
            try:
                answer = self.api.next_job()
            except ServerUnavailable:
                return
            body = answer.body
            still_ours = answer.ok and body.get("jobId") == self.job_id and (
                body.get("executionNumber", self.execution_number) == self.execution_number
            )
            if still_ours:
                return
        ended_as = self.reporter.progress(self.job_id, self.progress_body())
        if ended_as is not None and not self._closed:
            log.info("stopping job ended on the server job_id=%s status=%s",
                     self.job_id, ended_as)
            self.control.end(ended_as)
