"""Abort criteria: whether a job has failed badly enough to stop it, and the sweep that
cancels the jobs that have.

As in AWS IoT Jobs: a criterion is met when at least ``min_number_of_executed_devices`` devices
have finished (SUCCEEDED, FAILED, REJECTED or TIMED_OUT; canceled and removed rows never ran)
and the share of them that ended in ``failure_type`` reaches ``threshold_percentage``.
``ALL`` counts every failure type together.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from dispatcher import db
from dispatcher.jobs import control
from dispatcher.outcome import Outcome
from dispatcher.policies import POLICY_ACTOR
from schemas.policies import ALL_FAILURES
from schemas.vocabulary import EXECUTED, FAILED, FAILURES, REJECTED, TIMED_OUT

# The statuses each criterion's failure_type counts.
FAILURE_STATUSES = {
    FAILED: (FAILED,),
    REJECTED: (REJECTED,),
    TIMED_OUT: (TIMED_OUT,),
    ALL_FAILURES: tuple(sorted(FAILURES)),
}


def failure_percentage(counts: Mapping[str, int], failure_type: str) -> float:
    executed = sum(counts.get(s, 0) for s in EXECUTED)
    if executed == 0:
        return 0.0
    failed = sum(counts.get(s, 0) for s in FAILURE_STATUSES[failure_type])
    return 100.0 * failed / executed


def criterion_met(criterion: Mapping, counts: Mapping[str, int]) -> bool:
    executed = sum(counts.get(s, 0) for s in EXECUTED)
    if executed < criterion["min_number_of_executed_devices"]:
        return False
    return failure_percentage(counts, criterion["failure_type"]) >= criterion[
        "threshold_percentage"
    ]


def met_criterion(abort_config: Mapping | None, counts: Mapping[str, int]) -> Mapping | None:
    """The first criterion of ``abort_config`` that ``counts`` meet, or None."""
    if not abort_config:
        return None
    for criterion in abort_config["criteria_list"]:
        if criterion_met(criterion, counts):
            return criterion
    return None


def abort_reason(criterion: Mapping, counts: Mapping[str, int]) -> str:
    """The reason recorded on the job and on every row the abort cancels."""
    share = failure_percentage(counts, criterion["failure_type"])
    executed = sum(counts.get(s, 0) for s in EXECUTED)
    return (
        f"aborted: {share:.1f}% of {executed} executed devices ended "
        f"{criterion['failure_type']} (threshold {criterion['threshold_percentage']}%)"
    )


def apply_abort_criteria(now: datetime) -> Outcome:
    """Cancel every live job that meets one of its abort criteria (its QUEUED rows too)."""
    outcome = Outcome()
    for job in db.all("abort_candidates"):
        criterion = met_criterion(job["abort_config"], job["counts"])
        if criterion is None:
            continue
        with db.transaction() as c:
            if c.one("lock_live_job", job_id=job["job_id"]) is None:
                continue
            reason = abort_reason(criterion, job["counts"])
            outcome.merge(control.cancel_live_job(c, job["job_id"], POLICY_ACTOR,
                                                  "job.aborted", now, reason))
    return outcome
