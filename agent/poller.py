"""The poll loop: ask for the next job, run it, wait, again; never crash, never hammer.

The wait after an empty answer is the local poll interval or the server's
``pollAfterSeconds``, whichever is longer (the server may slow a fleet down; a device on a
metered link may poll less often), with jitter so a fleet does not poll in lockstep. While the
server is unreachable or failing, waits grow exponentially (with jitter) up to a ceiling. A
nudge (MQTT) cuts a wait short; bursts of nudges are folded into one poll.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable

from agent.reporter import Reporter
from agent.runner import Job, JobRunner
from agent.server_api import DeviceApi, ServerUnavailable

log = logging.getLogger(__name__)

BACKOFF_INITIAL_S = 1.0
BACKOFF_MAX_S = 300.0
POLL_JITTER = 0.2  # ±20 %
# Nudged polls are at least this far apart, so a flood of nudges cannot flood the server.
NUDGE_MIN_INTERVAL_S = 0.25
POLL_AFTER_MAX_S = 24 * 3600


class Backoff:
    """Exponential backoff with jitter: each delay is drawn from [d/2, d], d doubling."""

    def __init__(
        self,
        initial_s: float = BACKOFF_INITIAL_S,
        max_s: float = BACKOFF_MAX_S,
        rng: Callable[[], float] = random.random,
    ) -> None:
        self.initial_s = initial_s
        self.max_s = max_s
        self._rng = rng
        self.attempts = 0

    def next_delay(self) -> float:
        ceiling = min(self.max_s, self.initial_s * 2 ** min(self.attempts, 30))
        self.attempts += 1
        return ceiling / 2 + self._rng() * ceiling / 2

    def reset(self) -> None:
        self.attempts = 0


def poll_after_s(body: dict) -> float | None:
    """The server's ``pollAfterSeconds`` hint, when it is a sane number."""
    value = body.get("pollAfterSeconds")
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return None
    return float(value) if 0 < value <= POLL_AFTER_MAX_S else None


class Poller:
    def __init__(
        self,
        api: DeviceApi,
        runner: JobRunner,
        reporter: Reporter,
        poll_interval_s: float,
        rng: Callable[[], float] = random.random,
    ) -> None:
        self.api = api
        self.runner = runner
        self.reporter = reporter
        self.poll_interval_s = poll_interval_s
        self.backoff = Backoff(rng=rng)
        self._rng = rng
        self._nudged = threading.Event()
        self._stopped = threading.Event()
        self._last_nudged_poll = 0.0
        self._nudged_poll = False

    def run(self) -> None:
        try:
            self.runner.recover()
        except Exception:
            log.exception("could not settle the unfinished job; retrying at the next poll")
        while not self._stopped.is_set():
            self._sleep(self.poll_once())
        log.info("poll loop stopped")

    def poll_once(self) -> float:
        """One round: deliver waiting results, poll, run what came; return the wait after."""
        try:
            if not self.reporter.flush():
                return self.backoff.next_delay()
            answer = self.api.next_job(fresh=self._nudged_poll)
            if not answer.ok:
                log.error("poll refused http=%d message=%s", answer.status,
                          answer.body.get("message"))
                return self.backoff.next_delay()
            self.backoff.reset()
            has_job = answer.body.get("jobId") is not None
            if has_job and self.runner.handle(Job.from_answer(answer.body)):
                return 0.0
            interval = max(self.poll_interval_s, poll_after_s(answer.body) or 0.0)
            return interval * (1 - POLL_JITTER + 2 * POLL_JITTER * self._rng())
        except ServerUnavailable as exc:
            delay = self.backoff.next_delay()
            log.warning("server unavailable error=%s retry_in_s=%.1f", exc, delay)
            return delay
        except Exception:
            # A bad answer or a local failure must not kill the agent: log it, back off.
            delay = self.backoff.next_delay()
            log.exception("poll round failed retry_in_s=%.1f", delay)
            return delay

    def nudge(self) -> None:
        """Poll now (called from the MQTT thread)."""
        self._nudged.set()

    def stop(self) -> None:
        self._stopped.set()
        self._nudged.set()
        self.runner.stop()

    def _sleep(self, delay_s: float) -> None:
        self._nudged_poll = False
        if delay_s <= 0 or self._stopped.is_set():
            return
        if self._nudged.wait(delay_s) and not self._stopped.is_set():
            self._nudged_poll = True
            # A burst of nudges makes one poll: those arriving meanwhile are cleared below.
            self._stopped.wait(self._last_nudged_poll + NUDGE_MIN_INTERVAL_S - time.monotonic())
            self._last_nudged_poll = time.monotonic()
        self._nudged.clear()
