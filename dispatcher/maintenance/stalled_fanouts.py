"""Fan-outs that stalled: never sent because the broker was down, or their worker died. Each
unfinished fan-out with no send and no committed chunk for ``FANOUT_STALLED_AFTER_S`` is sent
again (a fan-out resumes from its last committed chunk, see ``dispatcher.jobs.fanout``)."""

from __future__ import annotations

import logging
from datetime import datetime

from dispatcher import db
from dispatcher.config import Settings
from dispatcher.maintenance.sweep import Sweep
from dispatcher.outcome import Outcome

log = logging.getLogger(__name__)

BATCH_SIZE = 100


def resume_stalled_fanouts(now: datetime, settings: Settings) -> Outcome:
    """The stalled fan-outs, to be fanned out again."""
    stalled = [row["job_id"] for row in
               db.all("stalled_fanouts", now=now, stalled_after_s=settings.fanout_stalled_after_s,
                      limit=BATCH_SIZE)]
    if stalled:
        log.info("fanout sweep stalled=%d", len(stalled))
    return Outcome(fan_outs=stalled)


SWEEP = Sweep("maintenance.resume_stalled_fanouts", "fanout_sweep_interval_s", BATCH_SIZE,
              resume_stalled_fanouts)
