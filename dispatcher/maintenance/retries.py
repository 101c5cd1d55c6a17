"""Failed rows whose retry policy allows another attempt are queued again
(``dispatcher.policies.retries``)."""

from __future__ import annotations

from datetime import datetime

from dispatcher.config import Settings
from dispatcher.maintenance.sweep import Sweep
from dispatcher.outcome import Outcome
from dispatcher.policies import retries

BATCH_SIZE = 1_000


def run(now: datetime, settings: Settings) -> Outcome:
    return retries.retry_failed_rows(now, limit=BATCH_SIZE)


SWEEP = Sweep("maintenance.retry_failed_rows", "policy_sweep_interval_s", BATCH_SIZE, run)
