"""Status reports: progress on the way, and final results through the outbox.

The server answers 409 with ``current_status`` when it refuses a report. During a run, a
terminal ``current_status`` (the job was canceled, timed out, removed) means the job ended on
the server: the caller stops it and sends nothing more. For a final report, a 409 showing the
very status we sent means the server already has our result.
"""

from __future__ import annotations

import logging

from agent.outbox import Outbox, OutboxEntry
from agent.server_api import DeviceApi, ServerUnavailable
from schemas.vocabulary import IN_PROGRESS, TERMINAL

log = logging.getLogger(__name__)

# The report may be accepted later (a token being fixed); anything else in 4xx never will be.
RETRY_LATER_STATUSES = frozenset({401, 403, 408})


class Reporter:
    def __init__(self, api: DeviceApi, outbox: Outbox) -> None:
        self.api = api
        self.outbox = outbox

    def progress(self, job_id: str, body: dict) -> str | None:
        """Send an IN_PROGRESS report; return the server's status if the job ended there."""
        try:
            answer = self.api.report_status(job_id, {"status": IN_PROGRESS, **body})
        except ServerUnavailable as exc:
            log.warning("progress report not sent job_id=%s error=%s", job_id, exc)
            return None
        current = answer.body.get("current_status")
        if answer.status == 409 and current in TERMINAL:
            log.info("job ended on the server job_id=%s status=%s", job_id, current)
            return current
        if not answer.ok:
            log.warning("progress report refused job_id=%s http=%d message=%s",
                        job_id, answer.status, answer.body.get("message"))
        return None

    def submit(self, job_id: str, execution_number: int, body: dict) -> None:
        """Make a final report durable; ``flush`` delivers it."""
        self.outbox.put(job_id, execution_number, body)
        log.info("final report queued job_id=%s status=%s", job_id, body.get("status"))

    def send_unkept(self, job_id: str, body: dict) -> bool:
        """Send a final report that could not be kept in the outbox; True if it arrived."""
        try:
            answer = self.api.report_status(job_id, body)
        except ServerUnavailable as exc:
            log.warning("final report not delivered job_id=%s error=%s", job_id, exc)
            return False
        if not answer.ok:
            log.error("final report refused job_id=%s http=%d message=%s",
                      job_id, answer.status, answer.body.get("message"))
        return answer.ok

    def flush(self) -> bool:
        """Deliver waiting final reports, oldest first; False if the server is unreachable."""
        return all(self._deliver(entry) for entry in self.outbox.pending())

    def _deliver(self, entry: OutboxEntry) -> bool:
        status = entry.body.get("status")
        try:
            answer = self.api.report_status(entry.job_id, entry.body)
        except ServerUnavailable as exc:
            log.warning("final report not delivered job_id=%s error=%s", entry.job_id, exc)
            return False
        current = answer.body.get("current_status")
        if answer.ok or (answer.status == 409 and current == status):
            log.info("final report accepted job_id=%s status=%s", entry.job_id, status)
        elif answer.status in RETRY_LATER_STATUSES:
            log.error("final report refused, will retry job_id=%s http=%d message=%s",
                      entry.job_id, answer.status, answer.body.get("message"))
            return False
        elif answer.status == 409 and current in TERMINAL:
            log.warning("job ended on the server before our result job_id=%s server=%s ours=%s",
                        entry.job_id, current, status)
        else:
            log.error("final report refused for good job_id=%s http=%d body=%s",
                      entry.job_id, answer.status, answer.body)
        self.outbox.remove(entry.job_id, entry.execution_number)
        return True
