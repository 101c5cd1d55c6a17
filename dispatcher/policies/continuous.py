"""Continuous jobs follow the fleet: a device that starts matching gets a row, a waiting device
that stops matching is REMOVED, and one that matches again gets a new attempt.

Beat reconciles every continuous job in full now and then; registering, changing or deleting a
device reconciles that one device at once (``dispatcher.fleet.devices``).
"""

from __future__ import annotations

import logging
import uuid
from datetime import datetime

from dispatcher import db
from dispatcher.jobs import control
from dispatcher.jobs.targeting import target_of_execution
from dispatcher.outcome import Outcome
from dispatcher.policies import POLICY_ACTOR
from schemas.nudges import CANCELED_EVENT, QUEUED_EVENT

log = logging.getLogger(__name__)


def reconcile_continuous(
    now: datetime, job_id: uuid.UUID | None = None, device_uuid: uuid.UUID | None = None,
    limit: int | None = None,
) -> Outcome:
    """Bring continuous jobs in line with the fleet: matching devices get a row, QUEUED rows
    of devices that stopped matching are REMOVED, and devices that match again get a new
    attempt. Narrow it to one job or one device."""
    outcome = Outcome()
    added: list[dict] = []
    removed: list[dict] = []
    with db.transaction() as c:
        for job in c.all("active_continuous_jobs", job_id=job_id, now=now):
            slots = {"target_filter": target_of_execution(job).predicate("target", now)}
            scope = {"job_id": job["job_id"], "device_uuid": device_uuid, "now": now}
            added += c.all_filtered("reconcile_add", slots, **scope, actor=POLICY_ACTOR)
            removed += c.all_filtered("reconcile_remove", slots, **scope, actor=POLICY_ACTOR)
            rematched = [r["id"] for r in c.all_filtered("rematched_rows", slots, **scope,
                                                         limit=limit)]
            outcome.merge(control.retry_rows(c, rematched, POLICY_ACTOR, "device_job.requeued",
                                             now))
    for row in added:
        if row["released"]:
            outcome.nudge(row["job_id"], QUEUED_EVENT, [row["device_uuid"]])
    for row in removed:
        outcome.may_have_completed.add(row["job_id"])
        if row["released"]:
            outcome.nudge(row["job_id"], CANCELED_EVENT, [row["device_uuid"]])
    requeued = outcome.moved_rows
    outcome.moved_rows += len(added) + len(removed)
    if outcome.moved_rows:
        log.info("continuous reconcile added=%d removed=%d requeued=%d device_uuid=%s",
                 len(added), len(removed), requeued, device_uuid)
    return outcome
