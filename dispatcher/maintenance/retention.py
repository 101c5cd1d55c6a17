"""History is kept for a configured time, then removed: finished executions and their device
rows after ``RETENTION_DAYS``, a recurring job's finished runs beyond the newest
``RETENTION_RECURRING_RUNS``, audit events after ``AUDIT_RETENTION_DAYS`` (0: keep forever),
a whole month of them at a time (``job_events`` is partitioned by month, and a month past
retention is dropped whole: tests/bench/bench_retention.py).

Other rows go in small batches, each its own short transaction, with a pause between batches
(``RETENTION_PAUSE_MS``) so that polls and reports keep the disk; a run stops after
``RUN_BUDGET_S`` and the next run takes the rest. What an active execution or the audit of a
live job needs is never removed. Each kind of history records what was last removed
(``history_prunes``), which the API and the portal show.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from dispatcher import db
from dispatcher.config import Settings
from dispatcher.maintenance.sweep import Sweep
from dispatcher.outcome import Outcome

log = logging.getLogger(__name__)

BATCH_SIZE = 2_000
# Executions taken on at once: their rows are removed batch by batch, then the executions.
JOBS_PER_ROUND = 20
RUN_BUDGET_S = 60.0
# How long dropping a month of audit events may wait for its locks (inserts of events queue
# behind the wait) before leaving the month to the next run.
DROP_LOCK_TIMEOUT_MS = 500


def prune_history(now: datetime, settings: Settings) -> Outcome:
    """Remove the history past its retention, a batch at a time, for at most RUN_BUDGET_S."""
    deadline = time.monotonic() + RUN_BUDGET_S
    outcome = Outcome()
    outcome.moved_rows += _prune_executions(now, settings, deadline)
    if settings.audit_retention_days > 0 and time.monotonic() < deadline:
        outcome.moved_rows += _prune_audit_events(
            now - timedelta(days=settings.audit_retention_days), settings, now, deadline)
    return outcome


def _prune_executions(now: datetime, settings: Settings, deadline: float) -> int:
    finished_before = (now - timedelta(days=settings.retention_days)
                       if settings.retention_days > 0 else None)
    if finished_before is None and settings.retention_recurring_runs <= 0:
        return 0
    removed = 0
    while time.monotonic() < deadline:
        jobs = db.all("prunable_executions", finished_before=finished_before,
                      runs_kept=settings.retention_recurring_runs, jobs=JOBS_PER_ROUND)
        if not jobs:
            break
        rows, executions = _remove_executions([job["job_id"] for job in jobs], settings,
                                              deadline)
        removed += rows + executions
        for kind in ("executions", "recurring_runs"):
            marks = [job["mark"] for job in jobs if job["kind"] == kind]
            if marks:
                pruned_before = finished_before if kind == "executions" else max(marks)
                db.execute("record_history_prune", kind=kind, pruned_before=pruned_before,
                           now=now, rows_removed=len(marks))
        log.info("retention sweep executions=%d device_rows=%d", executions, rows)
        if executions == 0:
            break  # each was retried or is still being removed: the next run looks again
    return removed


def _remove_executions(job_ids: list, settings: Settings, deadline: float) -> tuple[int, int]:
    """Remove the jobs' device rows and signatures a batch at a time, then the jobs; answer
    how many rows and how many jobs went."""
    rows = _in_batches(lambda: db.execute(
        "delete_rows_of_pruned_jobs", job_ids=job_ids, batch_size=BATCH_SIZE), settings, deadline)
    rows += _in_batches(lambda: db.execute(
        "delete_signatures_of_pruned_jobs", job_ids=job_ids, batch_size=BATCH_SIZE),
        settings, deadline)
    return rows, db.row("delete_pruned_executions", job_ids=job_ids)["n"]


def _prune_audit_events(cutoff: datetime, settings: Settings, now: datetime,
                        deadline: float) -> int:
    """Audit events go by whole months (UTC) once the month is wholly before the cutoff: each
    such month's partition is dropped, or, when it holds an event of a live job, its other
    events are deleted in batches."""
    happened_before = month_start(cutoff)
    removed = 0
    for month in db.all("expired_job_event_months", happened_before=happened_before):
        dropped = db.row("drop_job_events_month", month_start=month["month_start"],
                         lock_timeout_ms=DROP_LOCK_TIMEOUT_MS)
        log.info("retention sweep audit_month=%s outcome=%s events=%d",
                 f"{month['month_start'].astimezone(UTC):%Y-%m}", dropped["outcome"],
                 dropped["rows_removed"])
        removed += dropped["rows_removed"]
        if dropped["outcome"] == "busy":
            break  # the next run drops it: its rows are not to be deleted one by one meanwhile
    else:
        removed += _in_batches(lambda: db.execute(
            "delete_old_audit_events", happened_before=happened_before, batch_size=BATCH_SIZE),
            settings, deadline)
    if removed:
        db.execute("record_history_prune", kind="audit_events", pruned_before=happened_before,
                   now=now, rows_removed=removed)
        log.info("retention sweep audit_events=%d", removed)
    return removed


def month_start(moment: datetime) -> datetime:
    """The first instant of the month (UTC) that holds ``moment``."""
    return moment.astimezone(UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def _in_batches(delete_batch: Callable[[], int], settings: Settings, deadline: float) -> int:
    """Delete batch after batch until one removes less than BATCH_SIZE (or time is up)."""
    removed = 0
    while True:
        n = delete_batch()
        removed += n
        if n < BATCH_SIZE or time.monotonic() >= deadline:
            return removed
        time.sleep(settings.retention_pause_ms / 1000)


SWEEP = Sweep("maintenance.prune_history", "retention_sweep_interval_s", BATCH_SIZE,
              prune_history)
