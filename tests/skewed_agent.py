"""``jobs-agent`` on a device whose wall clock is far off (tests only):
``python tests/skewed_agent.py <offset_s> run …`` runs the real agent with ``time.time()``
moved by ``offset_s`` seconds (positive: ahead), as a device without NTP would have it.

``time.time`` is where the agent reads the wall clock (signature windows, records, outbox
order); ``time.monotonic``, which its durations use, is left alone, as a wrong wall clock
leaves the kernel's monotonic clock alone."""

from __future__ import annotations

import sys
import time

from agent.cli import main

if __name__ == "__main__":
    offset_s = float(sys.argv[1])
    true_time = time.time
    time.time = lambda: true_time() + offset_s
    raise SystemExit(main(sys.argv[2:]))
