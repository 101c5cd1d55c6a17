"""The audit trail's months are created ahead: ``job_events`` is partitioned by month (UTC) of
``occurred_at``, and this sweep creates the partitions of the current month and of the next
``MONTHS_AHEAD`` ones, so that events are written into a month that retention can drop whole
(``dispatcher.maintenance.retention``). An event of a month without its partition still lands,
in the default partition, and creating that month moves it out.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from dispatcher import db
from dispatcher.config import Settings
from dispatcher.maintenance.sweep import Sweep
from dispatcher.outcome import Outcome

log = logging.getLogger(__name__)

MONTHS_AHEAD = 2


def create_event_partitions(now: datetime, settings: Settings) -> Outcome:
    """Create the months of ``job_events`` from ``now``'s to MONTHS_AHEAD later, if missing."""
    created = db.all("create_job_events_months", now=now, months_ahead=MONTHS_AHEAD)
    for month in created:
        log.info("audit month created month=%s",
                 f"{month['month_start'].astimezone(UTC):%Y-%m}")
    return Outcome(moved_rows=len(created))


SWEEP = Sweep("maintenance.create_event_partitions", "event_partitions_sweep_interval_s",
              MONTHS_AHEAD + 1, create_event_partitions)
