"""last_seen_at under gunicorn as deployed: sightings are batched, yet none is lost when a
worker stops (its exit hook writes what it still holds)."""

from __future__ import annotations

import urllib.request

import pytest
from job_rows import next_url, register_fleet

from dispatcher import db

pytestmark = pytest.mark.slow


def last_seen(device) -> object:
    return db.one("get_device", uuid=device.uuid)["last_seen_at"]


def test_a_worker_that_stops_writes_the_sightings_it_holds(app, server_processes, settings):
    first, second = register_fleet(2)
    api = server_processes.start_api(settings, workers=1)
    for device in (first, second):
        request = urllib.request.Request(api.url + next_url(device), headers=device.headers)
        with urllib.request.urlopen(request, timeout=10) as response:
            assert response.status == 200
    # At most one of the two polls found a flush due; the other is still held in memory.
    assert last_seen(first) is None or last_seen(second) is None
    api.stop()  # SIGTERM: a graceful stop, as systemd and compose do it
    assert last_seen(first) is not None
    assert last_seen(second) is not None
