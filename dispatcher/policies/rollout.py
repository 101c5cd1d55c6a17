"""Rollout rate: how many held-back rows of a job may be released now, and the sweep that
releases them in waves.

The limit is a sliding minute: at any moment, the rows released in the last 60 seconds never
exceed the current rate. A beat tick releases what the minute still allows, so a job with
``maximum_per_minute: 100`` gets up to 100 devices at once, then the next ones as the first
wave ages out of the minute.

``exponential_rate`` follows AWS IoT Jobs: the rate starts at ``base_rate_per_minute`` and is
multiplied by ``increment_factor`` each time ``rate_increase_criteria`` is met again, i.e. for
every further ``number_of_notified_devices`` released or ``number_of_succeeded_devices``
succeeded. It never exceeds the 10,000 per minute ceiling.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from datetime import datetime

from dispatcher import db
from dispatcher.outcome import Outcome
from dispatcher.policies import POLICY_ACTOR
from schemas.nudges import QUEUED_EVENT
from schemas.policies import MAX_ROLLOUT_RATE_PER_MINUTE

log = logging.getLogger(__name__)

ROLLOUT_WINDOW_S = 60


@dataclass(frozen=True)
class RolloutProgress:
    released_last_minute: int  # rows released in the sliding minute ending now
    released_devices: int  # rows released since the job started
    succeeded_devices: int


def rate_per_minute(rollout_config: dict, released_devices: int, succeeded_devices: int) -> int:
    """The release rate now allowed for this job, in devices per minute."""
    if "maximum_per_minute" in rollout_config:
        return int(rollout_config["maximum_per_minute"])
    exponential = rollout_config["exponential_rate"]
    criteria = exponential["rate_increase_criteria"]
    if "number_of_notified_devices" in criteria:
        steps = released_devices // criteria["number_of_notified_devices"]
    else:
        steps = succeeded_devices // criteria["number_of_succeeded_devices"]
    base = exponential["base_rate_per_minute"]
    factor = exponential["increment_factor"]
    # Compare in logarithms: factor ** steps overflows long before steps gets large.
    if steps * math.log(factor) >= math.log(MAX_ROLLOUT_RATE_PER_MINUTE / base):
        return MAX_ROLLOUT_RATE_PER_MINUTE
    return min(MAX_ROLLOUT_RATE_PER_MINUTE, math.floor(base * factor**steps))


def releasable_now(rollout_config: dict | None, progress: RolloutProgress) -> int | None:
    """How many rows may be released now; None means no limit (no rollout config)."""
    if not rollout_config:
        return None
    rate = rate_per_minute(rollout_config, progress.released_devices, progress.succeeded_devices)
    return max(0, rate - progress.released_last_minute)


def release_waves(now: datetime) -> Outcome:
    """Release what each rollout's rate allows now; the released devices are nudged."""
    outcome = Outcome()
    for row in db.all("rollout_jobs", now=now):
        with db.transaction() as c:
            progress = c.one(
                "lock_rollout_progress", job_id=row["job_id"], now=now,
                window_s=ROLLOUT_WINDOW_S,
            )
            if progress is None:
                continue
            config = progress["rollout_config"]
            allowed = releasable_now(config, RolloutProgress(
                progress["released_last_minute"], progress["released_devices"],
                progress["succeeded_devices"],
            ))
            if not allowed:
                continue
            rate = rate_per_minute(config, progress["released_devices"],
                                   progress["succeeded_devices"])
            released = c.all(
                "release_wave", job_id=row["job_id"], limit=allowed, now=now,
                rate_per_minute=rate, actor=POLICY_ACTOR,
            )
        devices = [r["device_uuid"] for r in released]
        outcome.nudge(row["job_id"], QUEUED_EVENT, devices)
        outcome.moved_rows += len(devices)
        log.info("rollout wave job_id=%s released=%d rate_per_minute=%d",
                 row["job_id"], len(devices), rate)
    return outcome
