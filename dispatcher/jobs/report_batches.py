"""Status reports applied in batches: one statement and one commit for the reports that one API
process receives within a few milliseconds.

After a rollout thousands of devices of one job report within seconds; one transaction each
means one WAL flush each, and the commits, not the work, bound the rate. So each report's
parameters are queued here, and the request thread that finds no batch running takes every
queued report (after waiting ``window_s`` for more to join, when set) and applies them with
``report_device_jobs``: ``report_device_job`` for many rows, answering one row per report.
While that statement runs, the reports that arrive queue for the next batch, so a busy process
batches more and an idle one answers a lone report as fast as before (a batch of one is the
single statement itself).

Durable: a request thread answers its device only after the batch holding its report has
committed; a process killed before that commit loses nothing that was acknowledged (the
devices got no answer and retry, and a repeated result is answered as today). Each report's
answer is its own row of the batch's answer (token verdict, row as stored, current status),
so the caller answers it exactly as a report of its own. A batch holds at most one report per
device and job (a second one waits for the next batch: it would lock the same row); when the
batch statement fails for anything but an unreachable database, every report of the batch is
applied on its own instead, so one bad report never fails the others.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from psycopg.types.json import Jsonb

from dispatcher import db
from dispatcher.errors import Unavailable

# How long the thread that starts a batch waits for more reports to join it. None by default: a
# busy process batches anyway (reports queue while the previous batch runs), and a wait of 2 ms
# only added its latency to every report (measured: tests/bench/bench_reports.py).
WINDOW_S = 0.0
MAX_BATCH = 500

# The batch statement's columns, each one text array, from a report's parameters.
_COLUMNS = {
    "job_ids": "job_id", "device_uuids": "device_uuid", "token_hashes": "token_hash",
    "statuses": "status", "sources": "sources", "starts": "starts", "terminals": "terminal",
    "expected_versions": "expected_version", "step_timeouts": "step_timeout_minutes",
    "actors": "actor", "exit_codes": "exit_code", "stdouts": "stdout",
    "stdouts_truncated": "stdout_truncated", "stderrs": "stderr",
    "stderrs_truncated": "stderr_truncated", "reasons": "reason",
    "executed_steps": "executed_steps", "failed_steps": "failed_step",
    "status_details": "status_details",
}


@dataclass(eq=False)
class _Report:
    params: dict[str, Any]
    done: bool = False
    row: dict | None = None
    # For one report of each batch: every row the batch answered, so that what their commit
    # leaves to do (a completion check per job) is done once for the batch.
    batch_rows: list[dict] | None = None
    error: BaseException | None = None

    @property
    def key(self) -> tuple[uuid.UUID, uuid.UUID]:
        return self.params["device_uuid"], self.params["job_id"]


@dataclass
class ReportBatches:
    """The reports of this process waiting for their batch (thread-safe)."""

    window_s: float = WINDOW_S
    max_batch: int = MAX_BATCH
    # The size of the last batch applied: what a test or a debugger wants to see.
    last_batch_size: int = 0
    # One lock, two conditions: a report joining the queue wakes only the thread waiting out
    # its batch's window (if any); a batch finishing wakes the threads waiting for their answer
    # or their turn. Waking every waiting thread on every arrival cost a fifth of the API's
    # CPU under load (py-spy: Condition.notify), for threads that went straight back to sleep.
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _joined: threading.Condition = field(init=False)
    _finished: threading.Condition = field(init=False)
    _queued: list[_Report] = field(default_factory=list)
    _running: bool = False

    def __post_init__(self) -> None:
        self._joined = threading.Condition(self._lock)
        self._finished = threading.Condition(self._lock)

    def apply(self, params: dict[str, Any]) -> tuple[dict, list[dict] | None]:
        """Apply one report (``report_device_job``'s parameters) with whatever reports arrive
        with it; answer its row once its batch has committed, and for one report per batch
        every row of the batch (else None). Raises what applying it raised."""
        report = _Report(params)
        with self._lock:
            self._queued.append(report)
            self._joined.notify()
        while True:
            with self._lock:
                while self._running and not report.done:
                    self._finished.wait()
                if report.done:
                    break
                self._running = True
                deadline = time.monotonic() + self.window_s
                while len(self._queued) < self.max_batch:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        break
                    self._joined.wait(left)
                batch = self._take()
            try:
                _apply(batch)
            finally:
                with self._lock:
                    self.last_batch_size = len(batch)
                    self._running = False
                    self._finished.notify_all()
        if report.error is not None:
            raise report.error
        assert report.row is not None
        return report.row, report.batch_rows

    def _take(self) -> list[_Report]:
        # The caller holds the lock: the queued reports, one per device and job.
        batch: list[_Report] = []
        keys: set[tuple[uuid.UUID, uuid.UUID]] = set()
        rest: list[_Report] = []
        for report in self._queued:
            if report.key in keys or len(batch) >= self.max_batch:
                rest.append(report)
            else:
                keys.add(report.key)
                batch.append(report)
        self._queued = rest
        return batch


def _apply(batch: list[_Report]) -> None:
    """Apply the batch and hand each report its answer (or its error)."""
    try:
        if len(batch) == 1:
            rows = [db.row("report_device_job", **batch[0].params)]
        else:
            rows = db.all("report_device_jobs", **_columns(batch))
    except Unavailable as exc:
        for report in batch:
            report.error = exc
    except Exception:
        # One report's data refused (the schema lets nothing through that the database would
        # refuse, but should one be): each alone, so each gets its own answer.
        for report in batch:
            _apply_alone(report)
    except BaseException as exc:
        for report in batch:
            report.error = exc
        raise
    else:
        for report, row in zip(batch, rows, strict=True):
            report.row = {name: value for name, value in row.items() if name != "n"}
        batch[0].batch_rows = [report.row for report in batch if report.row is not None]
        for report in batch:
            report.row = dict(report.row or {})
    finally:
        for report in batch:
            report.done = True


def _apply_alone(report: _Report) -> None:
    try:
        report.row = db.row("report_device_job", **report.params)
        report.batch_rows = [dict(report.row)]
    except BaseException as exc:  # noqa: BLE001 - handed to the report's own thread
        report.error = exc


def _columns(batch: list[_Report]) -> dict[str, list[str | None]]:
    """The batch as the statement's text arrays."""
    return {column: [_text(report.params[name]) for report in batch]
            for column, name in _COLUMNS.items()}


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | tuple):
        return ",".join(value)
    if isinstance(value, Jsonb):
        return json.dumps(value.obj)
    return str(value)


of_this_process = ReportBatches()
