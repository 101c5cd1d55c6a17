"""Staged rollouts: which stage each device is in, and releasing a stage's devices.

A staged job's stages are planned when its fan-out starts (``plan_stages``): a stage sized by
``percent`` takes that share of the job's devices rounded up, and a sized stage at least one.
Stages with their own ``target_filter`` take their devices first, in stage order, each among
the devices no earlier stage took; the fan-out's keyset pages then fill the other stages in
order, each device's stage stored on its row in the same ``INSERT`` that creates it. Devices
are taken in uuid order throughout, so the assignment is deterministic, and a row keeps its
stage through pause, resume and retry.

Rows of a stage that is not released yet are QUEUED with ``released_at`` NULL: the poll never
hands them out and nothing nudges them. Releasing a stage marks it RELEASED (with the rollout
transition that decided it, ``dispatcher.policies.gates``) and then releases its rows in chunks
(``release_stage_rows``, run by a worker), one ``UPDATE`` per chunk, each taking its turn on the
stage's row. A release cut short is carried on by the gate sweep; a row is released once,
whoever releases it. A job with a ``rollout_config`` releases a released stage's rows at its
rate instead (``dispatcher.policies.rollout``).
"""

from __future__ import annotations

import json
import logging
import math
import uuid
from collections.abc import Iterator
from datetime import datetime

from dispatcher import db
from dispatcher.fleet.filters import compile_filter, parse_target_filter
from dispatcher.jobs.targeting import target_of_execution
from dispatcher.outcome import Outcome
from schemas.nudges import QUEUED_EVENT
from schemas.vocabulary import STAGE_PENDING, WAITING_FOR_APPROVAL

log = logging.getLogger(__name__)

# The remainder stage's end position in a fan-out page: beyond any page.
_NO_END = 2**62


def planned_sizes(stages: list[dict], total_devices: int) -> list[int | None]:
    """Each stage's size from its count or percent of ``total_devices`` (rounded up, at least
    one); None for the remainder stage."""
    sizes: list[int | None] = []
    for stage in stages:
        if "count" in stage:
            sizes.append(int(stage["count"]))
        elif "percent" in stage:
            sizes.append(max(1, math.ceil(stage["percent"] * total_devices / 100)))
        else:
            sizes.append(None)
    return sizes


def plan_stages(c: db.Connector, job: dict) -> list[uuid.UUID]:
    """In the fan-out's first chunk: the job's stage rows, the first stage released unless the
    job waits for approval, and the rows of the stages with their own filter. Answers the
    devices released now (to be nudged)."""
    job_id = job["job_id"]
    stages = job["stages"]
    sizes = planned_sizes(stages, job["total_devices"])
    c.execute(
        "insert_job_stages", job_id=job_id, numbers=list(range(len(stages))),
        names=[s["name"] for s in stages], planned_sizes=sizes,
        filters=[json.dumps(s["target_filter"]) if s.get("target_filter") else None
                 for s in stages],
        gates=[json.dumps(s["gate"]) if s.get("gate") else None for s in stages],
    )
    released: list[uuid.UUID] = []
    first_released = job["rollout_state"] != WAITING_FOR_APPROVAL
    if first_released:
        # The fan-out itself releases the first stage's rows as it inserts them.
        mark_stage_released(c, job_id, 0, rows_released=True)
    target_page = _target_page(job)
    for number, stage in enumerate(stages):
        if not stage.get("target_filter"):
            continue
        stage_filter = compile_filter(
            parse_target_filter(stage["target_filter"], "target_filter"), "stage")
        inserted = c.row_filtered(
            "fanout_insert_stage_filtered",
            {**target_page["slots"], "stage_filter": stage_filter},
            job_id=job_id, stage=number, limit=sizes[number],
            released=first_released and number == 0 and job["rollout_config"] is None,
            device_uuids=target_page["device_uuids"],
        )["inserted"]
        released.extend(inserted)
    log.info("stages planned job_id=%s stages=%d sizes=%s", job_id, len(stages), sizes)
    return released


def _target_page(job: dict) -> dict:
    return target_of_execution(job).page_filter()


def mark_stage_released(c: db.Connector, job_id: uuid.UUID, stage: int, *,
                        rows_released: bool) -> dict | None:
    """A PENDING stage becomes RELEASED and the rollout's current stage, its deadline set from
    its gate's stage_timeout_minutes; ``rows_released`` says nothing is left to release (the
    fan-out or a rollout rate releases its rows). None when the stage was not PENDING."""
    return c.one("mark_stage_released", job_id=job_id, stage=stage,
                 rows_released=rows_released)


def staged_chunk_params(c: db.Connector, job: dict) -> dict:
    """The stage parameters of the next fan-out page of a staged job: where each unfiltered
    stage ends among the page's new devices, and which stages release their rows at once."""
    plan = c.all("job_stage_plan", job_id=job["job_id"])
    numbers: list[int] = []
    ends: list[int] = []
    position = 0
    for stage in plan:
        if stage["target_filter"]:
            continue
        if stage["planned_size"] is None:
            numbers.append(stage["stage"])
            ends.append(_NO_END)
            break
        room = max(0, stage["planned_size"] - stage["size"])
        if room:
            position += room
            numbers.append(stage["stage"])
            ends.append(position)
    released = [] if job["rollout_config"] is not None else [
        s["stage"] for s in plan if s["state"] != STAGE_PENDING]
    return {
        "stage_numbers": numbers, "stage_ends": ends, "released_stages": released,
        "has_filtered_stages": any(s["target_filter"] for s in plan),
    }


def release_stage_rows(job_id: uuid.UUID, stage: int, chunk_rows: int) -> Iterator[Outcome]:
    """Release every held-back row of a RELEASED stage, one transaction per chunk of
    ``chunk_rows``, yielding after each chunk's commit what it leaves to do: nudge its devices
    (``moved_rows`` counts them). Safe to run twice, at once or after a crash: each chunk takes
    its turn on the stage row and releases only rows still held back."""
    while True:
        with db.transaction() as c:
            locked = c.one("lock_stage_for_release", job_id=job_id, stage=stage)
            if (locked is None or locked["state"] == STAGE_PENDING
                    or locked["rows_released_at"] is not None or locked["held_by_rate"]):
                return
            released = c.row("release_stage_chunk", job_id=job_id, stage=stage,
                             chunk_size=chunk_rows)["released"]
        outcome = Outcome(moved_rows=len(released))
        outcome.nudge(job_id, QUEUED_EVENT, released)
        log.info("stage rows released job_id=%s stage=%d rows=%d", job_id, stage, len(released))
        yield outcome
        if len(released) < chunk_rows:
            return


def stalled_releases(now: datetime, stalled_after_s: float,
                     limit: int) -> list[tuple[uuid.UUID, int]]:
    """Released stages whose release stopped before every row was released."""
    return [(r["job_id"], r["stage"]) for r in db.all(
        "stalled_stage_releases", now=now, stalled_after_s=stalled_after_s, limit=limit)]
