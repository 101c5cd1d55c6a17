"""How far this device's clock is from the server's, read from the ``Date`` header of each of
its answers.

The agent never takes the server's time for its own: a signed job's validity window is checked
by this device's clock, so that whoever controls the server (or the network) cannot stretch it.
The difference only explains: a job refused by a clock that looks off says so in its reason
(``looks_off``), and the agent logs it once when it goes past ``SKEW_NOTICE_S``. Durations
(step timeouts, backoff, waits) are measured on the monotonic clock, which a wrong or jumping
wall clock does not move.
"""

from __future__ import annotations

import logging
from email.utils import parsedate_to_datetime

log = logging.getLogger(__name__)

# The Date header has a one-second resolution and the answer took time to come: below this the
# clocks agree for every purpose of the agent (the server's signatures allow minutes of skew).
SKEW_NOTICE_S = 60.0


class ServerClock:
    """The latest difference between this device's clock and the server's."""

    def __init__(self) -> None:
        self.offset_s: float | None = None  # positive: this device's clock is ahead
        self._noticed = False

    def observe(self, date_header: str | None, local_now: float) -> None:
        """Learn the difference from an answer's ``Date`` header, read at ``local_now``."""
        if not date_header:
            return
        try:
            server_now = parsedate_to_datetime(date_header).timestamp()
        except (TypeError, ValueError, IndexError, OverflowError):
            return
        self.offset_s = local_now - server_now
        skew = self.looks_off()
        if skew and not self._noticed:
            log.warning("%s (by its Date header); signed jobs may be refused until the device's"
                        " time is set (NTP)", skew)
        self._noticed = skew is not None

    def looks_off(self) -> str | None:
        """What is wrong with this device's clock (``this device's clock is 3 h 0 min ahead of
        the server's``), or None when it agrees with the server's or was never compared."""
        if self.offset_s is None or abs(self.offset_s) < SKEW_NOTICE_S:
            return None
        side = "ahead of" if self.offset_s > 0 else "behind"
        return f"this device's clock is {_duration(abs(self.offset_s))} {side} the server's"


def _duration(seconds: float) -> str:
    minutes = round(seconds / 60)
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours} h {minutes} min"
    return f"{hours // 24} days {hours % 24} h"
