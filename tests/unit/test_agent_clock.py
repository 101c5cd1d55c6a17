"""The agent's comparison of its clock with the server's Date header, and what a wall clock
that moves does to the waits that read it."""

from __future__ import annotations

from email.utils import formatdate

import pytest

from agent.clock import ServerClock
from agent.recovery import reboot_wait_left

SERVER_NOW = 1_800_000_000.0


@pytest.mark.parametrize(("offset_s", "said"), [
    (0.8, None), (-45, None), (100, "2 min ahead of"), (-3 * 3600 - 120, "3 h 2 min behind"),
    (3 * 86400 + 7200, "3 days 2 h ahead of"),
])
def test_the_clock_looks_off_past_a_minute_from_the_servers(offset_s, said):
    clock = ServerClock()
    clock.observe(formatdate(SERVER_NOW, usegmt=True), SERVER_NOW + offset_s)
    looks_off = clock.looks_off()
    if said is None:
        assert looks_off is None
    else:
        assert looks_off == f"this device's clock is {said} the server's"


@pytest.mark.parametrize("header", [None, "", "yesterday", "Mon, 99 Foo 2026 25:61:00 GMT"])
def test_an_answer_without_a_readable_date_teaches_nothing(header):
    clock = ServerClock()
    clock.observe(header, SERVER_NOW)
    assert clock.offset_s is None and clock.looks_off() is None


def test_a_reboot_wait_is_never_longer_than_the_whole_wait_when_the_clock_went_back():
    record = {"running": {"reboot": True, "boot_id": "b", "started_at": SERVER_NOW}}
    assert reboot_wait_left(record, "b", 60, SERVER_NOW + 20) == 40
    # NTP set the clock 3 hours back since the reboot step began.
    assert reboot_wait_left(record, "b", 60, SERVER_NOW - 3 * 3600) == 60
