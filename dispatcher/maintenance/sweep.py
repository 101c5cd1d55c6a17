"""What a periodic sweep is: its Celery task's name (written out, never derived from a Python
name, so renaming a function cannot rename a task that may already be queued), the setting
that says how often beat runs it, how much one run takes on, and the function that runs it."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from dispatcher.config import Settings
from dispatcher.outcome import Outcome


@dataclass(frozen=True)
class Sweep:
    task_name: str
    interval_setting: str  # the Settings field: seconds between runs
    batch_size: int | None  # rows or jobs one run takes on (the next run takes the rest)
    run: Callable[[datetime, Settings], Outcome]

    @property
    def beat_name(self) -> str:
        return self.task_name.split(".", 1)[1].replace("_", "-")

    def interval_s(self, settings: Settings) -> float:
        return float(getattr(settings, self.interval_setting))


# A sweep that goes on chunk after chunk rests after each one for this share of the chunk's own
# time: the polls and reports queued behind its writes (CPU, WAL, the counter rows) are served
# in between, instead of waiting out the whole sweep (tests/bench/bench_timeout_sweep.py).
REST_RATIO = 0.5


def rest_after_chunk(chunk_started: float, ratio: float = REST_RATIO) -> None:
    """Sleep ``ratio`` times as long as the chunk begun at ``chunk_started`` (monotonic) took."""
    time.sleep(max(0.0, time.monotonic() - chunk_started) * ratio)
