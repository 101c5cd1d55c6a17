"""What the demo prints: a live progress bar per job, then a summary table.

Plain terminal output: on a terminal the bars are redrawn in place; elsewhere (a log, a test)
a line is printed whenever the counts change.
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass
from datetime import datetime
from typing import TextIO

from schemas.vocabulary import FAILURES, SUCCEEDED

BAR_WIDTH = 30


def progress_line(label: str, job: dict) -> str:
    total = job.get("total_devices") or 0
    succeeded = job.get("succeeded_devices") or 0
    failed = job.get("failed_devices") or 0
    done = succeeded + failed + (job.get("canceled_devices") or 0)
    filled = BAR_WIDTH * done // total if total else 0
    bar = "#" * filled + "." * (BAR_WIDTH - filled)
    return (f"  {label:<10} [{bar}] {done:>4}/{total:<4} succeeded {succeeded:<4} "
            f"failed {failed:<4} running {job.get('in_progress_devices') or 0:<4} "
            f"queued {job.get('queued_devices') or 0:<4} {job.get('status', '')}")


class ProgressDisplay:
    """Per-job bars, redrawn in place on a terminal."""

    def __init__(self, out: TextIO = sys.stdout) -> None:
        self.out = out
        self.in_place = out.isatty()
        self.drawn_lines = 0
        self.last: list[str] = []

    def show(self, jobs: dict[str, dict]) -> None:
        lines = [progress_line(label, job) for label, job in jobs.items()]
        if lines == self.last:
            return
        self.last = lines
        if self.in_place and self.drawn_lines:
            self.out.write(f"\x1b[{self.drawn_lines}F")  # back to the first bar
        for line in lines:
            self.out.write(("\x1b[2K" if self.in_place else "") + line + "\n")
        self.drawn_lines = len(lines)
        self.out.flush()


def percentile(values: list[float], fraction: float) -> float | None:
    """Nearest-rank percentile; None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)]


def _time(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


@dataclass(frozen=True)
class JobSummary:
    label: str
    job_name: str
    status: str
    devices: int
    succeeded: int
    failed: int
    other: int
    duration_s: float | None
    start_p50_s: float | None
    start_p95_s: float | None

    @property
    def all_succeeded(self) -> bool:
        return self.devices > 0 and self.succeeded == self.devices


def summarize(label: str, job: dict, device_statuses: list[dict]) -> JobSummary:
    """Counts, duration (queued to completed) and time-to-start percentiles of one job."""
    queued_at = datetime.fromisoformat(job["queued_at"])
    starts = [
        (datetime.fromisoformat(row["started_at"]) - queued_at).total_seconds()
        for row in device_statuses if row.get("started_at")
    ]
    completed_at = _time(job.get("completed_at"))
    succeeded = sum(1 for row in device_statuses if row["status"] == SUCCEEDED)
    failed = sum(1 for row in device_statuses
                 if row["status"] in FAILURES)
    return JobSummary(
        label=label, job_name=job["job_name"], status=job["status"],
        devices=job.get("total_devices") or len(device_statuses), succeeded=succeeded,
        failed=failed, other=len(device_statuses) - succeeded - failed,
        duration_s=(completed_at - queued_at).total_seconds() if completed_at else None,
        start_p50_s=percentile(starts, 0.50), start_p95_s=percentile(starts, 0.95),
    )


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}s"


def summary_table(summaries: list[JobSummary]) -> str:
    header = ("job", "status", "devices", "succeeded", "failed", "duration", "start p50",
              "start p95")
    rows = [header] + [
        (s.job_name, s.status, str(s.devices), str(s.succeeded), str(s.failed),
         _seconds(s.duration_s), _seconds(s.start_p50_s), _seconds(s.start_p95_s))
        for s in summaries
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = []
    for n, row in enumerate(rows):
        cells = [row[0].ljust(widths[0]), row[1].ljust(widths[1])]
        cells += [cell.rjust(width) for cell, width in zip(row[2:], widths[2:], strict=True)]
        lines.append("  " + "  ".join(cells))
        if n == 0:
            lines.append("  " + "  ".join("-" * width for width in widths))
    return "\n".join(lines)
