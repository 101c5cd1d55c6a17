"""Request rate limits per device, per client address, and for failed authentications.

Counted in fixed one-minute windows shared by every API process through Redis, with no Redis
round trip on almost every request: each process counts in memory, and once a second one
request adds the process's counts to Redis and reads back the fleet-wide totals (one pipelined
round trip). A request is refused when the last known total plus this process's unsent count
is over the limit, so a process enforces a limit at once on its own and all processes agree
within a second. Redis unreachable: the limits count this process's requests only (logged
once, retried every ``RETRY_REDIS_S``), and no request is refused for it.

What counts where, so that no one can spend another's allowance: a device's allowance counts
only requests authenticated as that device (``note_device_request``, after authentication), so
an outsider naming a device in a URL neither uses it up nor makes a key for it. An address's
allowance counts every request from it; the addresses counted are bounded per window
(``MAX_ADDRESSES``), so a client with many addresses cannot grow them without end. Failed
authentications of an address never refuse a valid credential: past the limit, the address's
failures answer 429 instead of 401 (back off), and its valid tokens are served as ever.

Thread safety: any request thread may call these methods; counts are kept under one lock held
for dict updates only; the one thread that flushes (a non-blocking lock picks it) talks to
Redis without holding it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import defaultdict
from dataclasses import dataclass

import redis

from dispatcher.config import Settings

log = logging.getLogger(__name__)

WINDOW_S = 60
FLUSH_EVERY_S = 1.0
RETRY_REDIS_S = 10.0
# Distinct client addresses counted per process and window; beyond, new ones go uncounted.
MAX_ADDRESSES = 100_000
DEVICE, ADDRESS, AUTH_FAILURES = "device", "address", "auth-failures"


@dataclass(frozen=True)
class Refusal:
    """Why a request is refused, and after how many seconds to try again."""

    message: str
    retry_after_s: int


class RateLimits:
    def __init__(self, settings: Settings) -> None:
        self.limits = {DEVICE: settings.rate_limit_device_per_min,
                       ADDRESS: settings.rate_limit_address_per_min,
                       AUTH_FAILURES: settings.rate_limit_auth_failures_per_min}
        self.prefix = f"{settings.celery_key_prefix}ratelimit:"
        self._redis = redis.Redis.from_url(settings.redis_url, socket_timeout=1.0,
                                           socket_connect_timeout=1.0)
        self._lock = threading.Lock()
        self._window = self._current_window()
        self._pending: defaultdict[tuple[str, str], int] = defaultdict(int)
        self._totals: dict[tuple[str, str], int] = {}
        # Keys of this window whose Redis expiry has been set.
        self._expiring: set[tuple[str, str]] = set()
        self._addresses: set[str] = set()
        self._addresses_full = False
        self._redis_down = False
        self._flushing = threading.Lock()
        self._next_flush = time.monotonic() + FLUSH_EVERY_S

    @staticmethod
    def _current_window() -> int:
        return int(time.time()) // WINDOW_S

    def retry_after_s(self) -> int:
        """Seconds until the current window ends."""
        return max(1, WINDOW_S - int(time.time()) % WINDOW_S)

    def admit(self, address: str | None, device: str | None) -> Refusal | None:
        """Count a request from ``address``; a Refusal when the address, or ``device`` (counted
        only by ``note_device_request``), is over its limit."""
        refusal = None
        with self._lock:
            self._roll_window()
            if address and self.limits[ADDRESS] > 0 and self._may_count(address):
                self._pending[(ADDRESS, address)] += 1
                if self._over(ADDRESS, address):
                    refusal = Refusal("Too many requests for this address",
                                      self.retry_after_s())
            # This request is not counted yet: at the limit, it would be one too many.
            if refusal is None and device and self._reached(DEVICE, device):
                refusal = Refusal("Too many requests for this device", self.retry_after_s())
        if time.monotonic() >= self._next_flush and self._flushing.acquire(blocking=False):
            try:
                self.flush()
            finally:
                self._flushing.release()
        return refusal

    def note_device_request(self, device: str) -> None:
        """Count a request authenticated as ``device`` against its allowance."""
        if self.limits[DEVICE] <= 0:
            return
        with self._lock:
            self._roll_window()
            self._pending[(DEVICE, device)] += 1

    def note_failed_authentication(self, address: str | None) -> bool:
        """Count a 401 to ``address``; whether the address is now over its limit."""
        if not address or self.limits[AUTH_FAILURES] <= 0:
            return False
        with self._lock:
            self._roll_window()
            if not self._may_count(address):
                return False
            self._pending[(AUTH_FAILURES, address)] += 1
            return self._over(AUTH_FAILURES, address)

    def _may_count(self, address: str) -> bool:
        """Whether ``address`` is, or may become, one of this window's counted addresses."""
        if address in self._addresses:
            return True
        if len(self._addresses) < MAX_ADDRESSES:
            self._addresses.add(address)
            return True
        if not self._addresses_full:
            log.warning("rate limits: %d client addresses this minute; new ones go uncounted "
                        "until the next", MAX_ADDRESSES)
            self._addresses_full = True
        return False

    def _reached(self, kind: str, key: str) -> bool:
        limit = self.limits[kind]
        return limit > 0 and self._count(kind, key) >= limit

    def _over(self, kind: str, key: str) -> bool:
        limit = self.limits[kind]
        return limit > 0 and self._count(kind, key) > limit

    def _count(self, kind: str, key: str) -> int:
        return self._totals.get((kind, key), 0) + self._pending.get((kind, key), 0)

    def _roll_window(self) -> None:
        window = self._current_window()
        if window != self._window:
            self._window, self._totals, self._expiring = window, {}, set()
            self._pending = defaultdict(int)
            self._addresses, self._addresses_full = set(), False

    def flush(self) -> None:
        """Add this process's counts to Redis and learn the fleet-wide totals."""
        self._next_flush = time.monotonic() + FLUSH_EVERY_S
        with self._lock:
            self._roll_window()
            window, pending = self._window, self._pending
            self._pending = defaultdict(int)
        if not pending:
            return
        keys = list(pending)
        try:
            pipe = self._redis.pipeline(transaction=False)
            # A key lives for one window: its expiry is sent once a window per process, so a
            # busy device costs one command a flush, not two.
            expiring = [(kind, key) for kind, key in keys if (kind, key) not in self._expiring]
            for kind, key in keys:
                pipe.incrby(f"{self.prefix}{kind}:{key}:{window}", pending[(kind, key)])
            for kind, key in expiring:
                pipe.expire(f"{self.prefix}{kind}:{key}:{window}", 2 * WINDOW_S)
            totals = pipe.execute()[:len(keys)]
        except redis.RedisError as exc:
            if not self._redis_down:
                log.warning("rate limits: Redis unavailable, counting in this process only: %s",
                            exc)
                self._redis_down = True
            self._next_flush = time.monotonic() + RETRY_REDIS_S
            totals = None
        with self._lock:
            if window != self._window:
                return
            if totals is not None:
                self._expiring.update(expiring)
            for (kind, key), total in zip(keys, totals or [None] * len(keys), strict=True):
                local = self._totals.get((kind, key), 0) + pending[(kind, key)]
                self._totals[(kind, key)] = int(total) if total is not None else local
        if totals is not None and self._redis_down:
            log.warning("rate limits: Redis reachable again")
            self._redis_down = False
