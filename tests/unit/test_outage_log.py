"""An outage is logged once: a request that waited through its last seconds and fails just
after the database came back is part of it, not a new outage."""

from __future__ import annotations

import logging
import time

from dispatcher.db import _Outage


def test_a_request_begun_during_an_outage_that_fails_after_it_logs_nothing_new(caplog):
    outage = _Outage()
    refused = OSError("connection refused")
    with caplog.at_level(logging.WARNING, logger="dispatcher.db"):
        waiting_since = time.monotonic()
        outage.began(refused, waiting_since)
        outage.ended()
        outage.began(TimeoutError("couldn't get a connection"), waiting_since)
        assert not outage.active
        outage.began(refused, time.monotonic())  # a request of after the return: a new outage
    assert [r.getMessage() for r in caplog.records] == [
        "database unavailable: connection refused", "database reachable again",
        "database unavailable: connection refused"]
