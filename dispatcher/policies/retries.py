"""Automatic retries: a new attempt for each failed row its job's retry_config still allows
(counted per failure type, see ``retry_allowed`` in the schema)."""

from __future__ import annotations

import logging
from datetime import datetime

from dispatcher import db
from dispatcher.jobs import control
from dispatcher.outcome import Outcome
from dispatcher.policies import POLICY_ACTOR

log = logging.getLogger(__name__)


def retry_failed_rows(now: datetime, limit: int | None = None) -> Outcome:
    """A new attempt for each failed row that its job's retry_config still allows."""
    with db.transaction() as c:
        ids = [r["id"] for r in c.all("retryable_rows", limit=limit)]
        outcome = control.retry_rows(c, ids, POLICY_ACTOR, "device_job.retried", now)
    if outcome.moved_rows:
        log.info("auto-retry rows=%d", outcome.moved_rows)
    return outcome
