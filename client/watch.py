"""Following jobs until they end: a live progress bar per job on a terminal, plain lines in a
pipeline's log, and an exit code that says how the jobs ended."""

from __future__ import annotations

import shutil
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TextIO

from client.api import DeviceJobsClient
from schemas.vocabulary import CANCELED, ENDED_JOB, FAILED, SUCCEEDED

EXIT_SUCCEEDED = 0
EXIT_FAILED = 3
EXIT_CANCELED = 4
EXIT_WATCH_TIMEOUT = 5
# A plain line at least this often while nothing changes, so a pipeline's log shows life.
PLAIN_LINE_EVERY_S = 30.0
BAR_WIDTH = 24


@dataclass
class Progress:
    """One job's counters over time, for its rate and ETA."""

    job_id: str
    first_seen: float = field(default_factory=time.monotonic)
    first_done: int | None = None
    job: dict = field(default_factory=dict)

    @property
    def done(self) -> int:
        job = self.job
        return sum(job.get(k) or 0 for k in (
            "succeeded_devices", "failed_devices", "canceled_devices", "removed_devices"))

    @property
    def ended(self) -> bool:
        return self.job.get("status") in ENDED_JOB

    def update(self, job: dict) -> None:
        self.job = job
        if self.first_done is None:
            self.first_done = self.done

    def rate_per_s(self) -> float | None:
        elapsed = time.monotonic() - self.first_seen
        finished = self.done - (self.first_done or 0)
        return finished / elapsed if elapsed > 0 and finished > 0 else None

    def counts(self) -> str:
        job = self.job
        return (f"{job.get('succeeded_devices', 0)} succeeded, {job.get('failed_devices', 0)} "
                f"failed, {job.get('in_progress_devices', 0)} in progress, "
                f"{job.get('queued_devices', 0)} queued of {job.get('total_devices', 0)}")

    def rate_and_eta(self) -> str:
        rate = self.rate_per_s()
        if rate is None:
            return "rate -, ETA -"
        remaining = max((self.job.get("total_devices") or 0) - self.done, 0)
        eta = "-" if self.ended else _duration(remaining / rate)
        return f"{rate * 60:.1f}/min, ETA {eta}"

    def plain_line(self) -> str:
        name = self.job.get("job_name", self.job_id)
        return (f"{name} {self.job_id} {self.job.get('status')}: {self.counts()}, "
                f"{self.rate_and_eta()}")

    def bar_line(self, width: int) -> str:
        total = self.job.get("total_devices") or 0
        job = self.job
        shares = [(job.get("succeeded_devices") or 0, "#"), (job.get("failed_devices") or 0, "x"),
                  (job.get("in_progress_devices") or 0, ">")]
        bar = ""
        for count, mark in shares:
            bar += mark * (round(BAR_WIDTH * count / total) if total else 0)
        bar = bar[:BAR_WIDTH].ljust(BAR_WIDTH, ".")
        name = str(job.get("job_name", self.job_id))[:20]
        line = (f"{name} [{bar}] {self.done}/{total} ✓{job.get('succeeded_devices', 0)} "
                f"✗{job.get('failed_devices', 0)} ▶{job.get('in_progress_devices', 0)} "
                f"…{job.get('queued_devices', 0)} {self.rate_and_eta()} {job.get('status')}")
        return line[:width]


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


def exit_code(statuses: Sequence[str]) -> int:
    """0 when every job SUCCEEDED; else FAILED's code, before CANCELED's."""
    if all(s == SUCCEEDED for s in statuses):
        return EXIT_SUCCEEDED
    if FAILED in statuses:
        return EXIT_FAILED
    if CANCELED in statuses:
        return EXIT_CANCELED
    return EXIT_WATCH_TIMEOUT


def watch_jobs(client: DeviceJobsClient, job_ids: Sequence[str], *, interval_s: float = 2.0,
               timeout_s: float | None = None, out: TextIO | None = None,
               terminal: bool | None = None, width: Callable[[], int] | None = None) -> int:
    """Poll the jobs until each has ended (or ``timeout_s``), drawing progress; answer the
    exit code (``exit_code``, or EXIT_WATCH_TIMEOUT when one had not ended in time)."""
    out = out or sys.stdout
    terminal = out.isatty() if terminal is None else terminal
    columns = width or _terminal_width
    progress = [Progress(job_id) for job_id in job_ids]
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    drawn = 0
    last_counts: list[tuple[object, str]] = []
    last_plain = 0.0
    while True:
        for p in progress:
            if not p.ended:
                p.update(client.get_execution(p.job_id)["job"])
        finished = all(p.ended for p in progress)
        timed_out = deadline is not None and time.monotonic() >= deadline
        if terminal:
            if drawn:
                out.write(f"\x1b[{drawn}A")
            for p in progress:
                out.write("\r\x1b[2K" + p.bar_line(columns() - 1) + "\n")
            drawn = len(progress)
        else:
            counts = [(p.job.get("status"), p.counts()) for p in progress]
            now = time.monotonic()
            if (counts != last_counts or now - last_plain >= PLAIN_LINE_EVERY_S
                    or finished or timed_out):
                for p in progress:
                    out.write(p.plain_line() + "\n")
                last_counts, last_plain = counts, now
        out.flush()
        if finished:
            return exit_code([p.job["status"] for p in progress])
        if timed_out:
            out.write(f"watch timed out after {timeout_s:g}s; the jobs go on\n")
            out.flush()
            return EXIT_WATCH_TIMEOUT
        time.sleep(interval_s if deadline is None
                   else max(0.0, min(interval_s, deadline - time.monotonic())))


def _terminal_width() -> int:
    return shutil.get_terminal_size().columns
