"""What a periodic sweep is: its Celery task's name (written out, never derived from a Python
name, so renaming a function cannot rename a task that may already be queued), the setting
that says how often beat runs it, how much one run takes on, and the function that runs it."""

from __future__ import annotations

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
