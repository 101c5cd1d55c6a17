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


class CancelWatch:
    def __init__(
        self,
        api: DeviceApi,
        reporter: Reporter,
        job_id: str,
        execution_number: int,
        control: JobControl,
        interval_s: Callable[[], float],
        progress_body: Callable[[], dict],
    ) -> None:
        self._api = api
        self._reporter = reporter
        self._job_id = job_id
        self._execution_number = execution_number
        self._control = control
        self._interval_s = interval_s
        self._progress_body = progress_body
        self._wake = threading.Event()
        self._confirm_now = False
        self._closed = False
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
            self._wake.wait(self._interval_s())
            self._wake.clear()
            if self._closed or self._control.interrupt.is_set():
                return
            try:
                self._check()
            except (AgentError, OSError) as exc:
                log.warning("cancel check failed job_id=%s error=%s", self._job_id, exc)

    def _check(self) -> None:
        confirm, self._confirm_now = self._confirm_now, False
        if not confirm:
            try:
                answer = self._api.next_job()
            except ServerUnavailable:
                return
            body = answer.body
            still_ours = answer.ok and body.get("jobId") == self._job_id and (
                body.get("executionNumber", self._execution_number) == self._execution_number
            )
            if still_ours:
                return
        ended_as = self._reporter.progress(self._job_id, self._progress_body())
        if ended_as is not None and not self._closed:
            log.info("stopping job ended on the server job_id=%s status=%s",
                     self._job_id, ended_as)
            self._control.end(ended_as)
