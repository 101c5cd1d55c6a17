"""What a change leaves to do once it has committed: nudge devices, fan jobs out, complete jobs.

Domain functions decide; they never tell anyone. A function that changes rows returns what must
happen after its transaction commits as an ``Outcome`` (with its answer, a ``Decided``), and the
adapter that called it (an API view, a worker task, a command) carries it out through the one
sender (``dispatcher.sender.carry_out``). A nudge must never reach a device before the row it
announces is visible, and a job can only be seen complete once its last device's row has
committed (see ``dispatcher.jobs.completion``).
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Generic, TypeVar

T = TypeVar("T")


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
    # Devices to be given an MQTT identity on the broker (uuid -> the hash of the device token
    # its password is derived from), and devices whose identity is to be removed.
    broker_grants: dict[uuid.UUID, bytes] = field(default_factory=dict)
    broker_revocations: set[uuid.UUID] = field(default_factory=set)
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
        self.broker_grants.update(other.broker_grants)
        self.broker_revocations |= other.broker_revocations
        self.moved_rows += other.moved_rows
        return self


@dataclass
class Decided(Generic[T]):
    """A domain function's answer and what its committed change leaves to do."""

    answer: T
    outcome: Outcome = field(default_factory=Outcome)
