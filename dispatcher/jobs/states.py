"""The device execution state table of DESIGN.md "Statuses", as data.

Every status change of a ``device_job_status`` row is checked against ``TRANSITIONS``. The SQL
that applies a change takes the allowed source statuses from ``sources_for`` as a parameter, so
the table is written once, here, and the database enforces it under concurrency (a conditional
UPDATE matches only rows still in an allowed source status).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from enum import StrEnum

from schemas.vocabulary import (
    CANCELED,
    FAILED,
    IN_PROGRESS,
    QUEUED,
    REJECTED,
    REMOVED,
    SUCCEEDED,
    TIMED_OUT,
)


class Actor(StrEnum):
    """Who asks for a transition: the device itself, or the server (an admin or a worker)."""

    DEVICE = "device"
    SERVER = "server"


@dataclass(frozen=True)
class Transition:
    source: str
    target: str
    actor: Actor
    needs_force: bool = False


def _rows(source: str, targets: tuple[str, ...], actor: Actor, needs_force: bool = False):
    return [Transition(source, target, actor, needs_force) for target in targets]


TRANSITIONS: tuple[Transition, ...] = (
    *_rows(QUEUED, (IN_PROGRESS, SUCCEEDED, FAILED, REJECTED), Actor.DEVICE),
    *_rows(QUEUED, (CANCELED, REMOVED, TIMED_OUT), Actor.SERVER),
    *_rows(IN_PROGRESS, (IN_PROGRESS, SUCCEEDED, FAILED, REJECTED), Actor.DEVICE),
    *_rows(IN_PROGRESS, (TIMED_OUT,), Actor.SERVER),
    *_rows(IN_PROGRESS, (CANCELED,), Actor.SERVER, needs_force=True),
)


def is_allowed(source: str, target: str, actor: Actor, force: bool = False) -> bool:
    """Whether the table lets ``actor`` move a row from ``source`` to ``target``."""
    return any(
        t.source == source and t.target == target and t.actor is actor
        and (force or not t.needs_force)
        for t in TRANSITIONS
    )


def sources_for(target: str, actor: Actor, force: bool = False) -> list[str]:
    """The statuses from which ``actor`` may move a row to ``target``, in table order."""
    return list(_sources(target, actor, force))


@functools.cache
def _sources(target: str, actor: Actor, force: bool) -> tuple[str, ...]:
    # Asked on every status report; the table never changes, so each answer is worked out once.
    sources = [
        t.source for t in TRANSITIONS
        if t.target == target and t.actor is actor and (force or not t.needs_force)
    ]
    return tuple(dict.fromkeys(sources))
