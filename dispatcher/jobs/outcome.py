"""What a change leaves to do once it has committed: nudge devices, fan jobs out, complete jobs.

Domain functions that change rows collect their side effects in an ``Outcome`` and carry it out
after their transaction commits (``carry_out``): a nudge must never reach a device before the
row it announces is visible, and a job can only be seen complete once its last device's row
has committed (see ``dispatcher.jobs.completion``).
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime

from dispatcher.config import Settings
from dispatcher.enqueue import enqueue_fan_out, enqueue_nudge, enqueue_stage_release
from dispatcher.jobs import completion


@dataclass
class Outcome:
    """Side effects of committed changes, and how many rows the changes moved."""

    # (job, event) -> the devices to nudge about it.
    nudges: dict[tuple[uuid.UUID, str], list[uuid.UUID]] = field(
        default_factory=lambda: defaultdict(list)
    )
    # (job, event): every device the event is about (its latest, released row in that status).
    job_nudges: set[tuple[uuid.UUID, str]] = field(default_factory=set)
    fan_outs: list[uuid.UUID] = field(default_factory=list)
    # Jobs whose devices may all have finished now.
    may_have_completed: set[uuid.UUID] = field(default_factory=set)
    # Staged jobs whose current stage's gate may have been decided now.
    gate_checks: set[uuid.UUID] = field(default_factory=set)
    # (job, stage): released stages whose held-back rows a worker is to release.
    stage_releases: set[tuple[uuid.UUID, int]] = field(default_factory=set)
    moved_rows: int = 0

    def nudge(self, job_id: uuid.UUID, event: str, device_uuids: list[uuid.UUID]) -> None:
        if device_uuids:
            self.nudges[(job_id, event)].extend(device_uuids)

    def merge(self, other: Outcome) -> Outcome:
        for key, devices in other.nudges.items():
            self.nudges[key].extend(devices)
        self.job_nudges |= other.job_nudges
        self.fan_outs.extend(other.fan_outs)
        self.may_have_completed |= other.may_have_completed
        self.gate_checks |= other.gate_checks
        self.stage_releases |= other.stage_releases
        self.moved_rows += other.moved_rows
        return self


def carry_out(outcome: Outcome, settings: Settings) -> None:
    """After the changes have committed: nudge devices, enqueue fan-outs and stage releases,
    decide stage gates, complete jobs."""
    if outcome.gate_checks:
        from dispatcher.policies import gates  # gates return outcomes: imported where used

        for job_id in outcome.gate_checks:
            outcome.merge(gates.evaluate_gate(job_id, datetime.now(UTC)))
    for (job_id, event), devices in outcome.nudges.items():
        enqueue_nudge(settings, job_id, event, devices)
    for job_id, event in outcome.job_nudges:
        enqueue_nudge(settings, job_id, event)
    for job_id in outcome.fan_outs:
        enqueue_fan_out(settings, job_id)
    for job_id, stage in outcome.stage_releases:
        enqueue_stage_release(settings, job_id, stage)
    for job_id in outcome.may_have_completed:
        completion.complete_if_done(job_id)
