"""When each device was last heard from: ``devices.last_seen_at``.

Neither a poll nor a status report writes it: 100,000 devices polling every 30 s would
otherwise be thousands of row writes, each waiting for a WAL flush, every second, on the
hottest paths of the product, and each report would update its device's row besides its job
row. Instead each API process notes which devices it heard from and, at most every
``FLUSH_INTERVAL_S``, writes them in one statement that touches only rows older than
``LAST_SEEN_RESOLUTION_S``. A timer writes what is due when no request comes, and a gunicorn
worker that stops writes what it holds (deploy/gunicorn.conf.py). So last_seen_at is at most
``FLUSH_INTERVAL_S`` late, a row is written at most once per resolution however often its
device calls, and only a process that is killed loses sightings (one interval at most).
"""

from __future__ import annotations

import logging
import threading
import time
import uuid

from dispatcher import db
from dispatcher.errors import Unavailable

log = logging.getLogger(__name__)

FLUSH_INTERVAL_S = 10.0
LAST_SEEN_RESOLUTION_S = 60


class Sightings:
    """The devices heard from by this process since the last flush (thread-safe)."""

    def __init__(self, flush_interval_s: float = FLUSH_INTERVAL_S) -> None:
        self.flush_interval_s = flush_interval_s
        self._lock = threading.Lock()
        self._seen: set[uuid.UUID] = set()
        self._flushed_at = time.monotonic()

    def note(self, device_uuid: uuid.UUID) -> None:
        """Record a call; the request that finds the interval over writes the batch."""
        with self._lock:
            self._seen.add(device_uuid)
            batch = self._take_due_batch()
        if batch is not None:
            self._write(batch)

    def flush_if_due(self) -> int:
        """Write the batch when the interval is over; answer how many rows changed. For the
        timer of ``keep_flushing``, so the last calls before a quiet spell are written too."""
        with self._lock:
            batch = self._take_due_batch()
        return 0 if batch is None else self._write(batch)

    def _take_due_batch(self) -> set[uuid.UUID] | None:
        # The caller holds the lock.
        now = time.monotonic()
        if now - self._flushed_at < self.flush_interval_s:
            return None
        batch, self._seen, self._flushed_at = self._seen, set(), now
        return batch

    def keep_flushing(self) -> threading.Thread:
        """Start a daemon thread that flushes whatever is due every interval (one per process,
        started after the fork)."""

        def run() -> None:
            while True:
                time.sleep(self.flush_interval_s)
                self.flush_if_due()

        thread = threading.Thread(target=run, name="sightings-flush", daemon=True)
        thread.start()
        return thread

    def flush(self) -> int:
        """Write every pending sighting now; answer how many rows changed."""
        with self._lock:
            batch, self._seen, self._flushed_at = self._seen, set(), time.monotonic()
        return self._write(batch)

    @staticmethod
    def _write(batch: set[uuid.UUID]) -> int:
        if not batch:
            return 0
        try:
            # One array literal of hex uuids: psycopg's per-element array dump of a batch of
            # tens of thousands takes ~5x the time, holding the GIL of the process's threads.
            device_uuids = "{" + ",".join(device.hex for device in batch) + "}"
            return db.execute(
                "record_polls", device_uuids=device_uuids, resolution_s=LAST_SEEN_RESOLUTION_S
            )
        except Unavailable:
            return 0  # presence is best effort, and dispatcher.db logs the outage once
        except Exception as exc:  # presence is best effort: a poll never fails for it
            log.warning("last_seen_at not recorded devices=%d error=%s", len(batch), exc)
            return 0


of_this_process = Sightings()
