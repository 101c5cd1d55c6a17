"""The fleet numbers on the portal (devices registered, devices online) are counted by a periodic
sweep into one row, so a page reads one row instead of counting the fleet."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from job_rows import register_fleet
from suite_constants import TEST_ADMIN_TOKEN
from test_portal import sign_in

from dispatcher import db
from dispatcher.config import Settings
from dispatcher.fleet.counts import count_fleet, fleet_overview
from dispatcher.maintenance import SWEEPS, fleet_count
from workers.periodic import beat_schedule, run_sweep

ONLINE_WITHIN_S = 300
INTERVAL_S = 15
SETTINGS = Settings(device_online_within_s=ONLINE_WITHIN_S, fleet_count_interval_s=INTERVAL_S)


def seen(device_uuid, ago: timedelta) -> None:
    with db.pool().connection() as conn:
        conn.execute("UPDATE devices SET last_seen_at = now() - %s WHERE uuid = %s",
                     (ago, device_uuid))


def test_the_first_view_counts_and_later_views_read_the_sweep_s_count(app):
    fleet = register_fleet(3)
    seen(fleet[0].uuid, timedelta(seconds=10))
    seen(fleet[1].uuid, timedelta(seconds=ONLINE_WITHIN_S - 30))
    seen(fleet[2].uuid, timedelta(hours=2))
    first = fleet_overview(SETTINGS)
    assert (first["total"], first["online"]) == (3, 2)

    register_fleet(1, prefix="newcomer")
    seen(fleet[2].uuid, timedelta(seconds=1))
    stored = fleet_overview(SETTINGS)
    assert (stored["total"], stored["online"]) == (3, 2), \
        "a view reads the stored count; it does not count the fleet"

    count_fleet(datetime.now(UTC), ONLINE_WITHIN_S)
    counted = fleet_overview(SETTINGS)
    assert (counted["total"], counted["online"]) == (4, 3)
    assert counted["counted_at"] >= first["counted_at"]


def test_a_count_older_than_two_sweep_intervals_is_counted_again_by_a_view(app):
    """Without beat, the numbers still follow the fleet, one scan per two intervals at most."""
    register_fleet(2)
    count_fleet(datetime.now(UTC) - timedelta(seconds=2 * INTERVAL_S - 5), ONLINE_WITHIN_S)
    register_fleet(1, prefix="newcomer")
    assert fleet_overview(SETTINGS)["total"] == 2
    count_fleet(datetime.now(UTC) - timedelta(seconds=2 * INTERVAL_S + 5), ONLINE_WITHIN_S)
    assert fleet_overview(SETTINGS)["total"] == 3


def test_another_online_window_is_counted_at_once(app):
    fleet = register_fleet(2)
    seen(fleet[0].uuid, timedelta(seconds=100))
    seen(fleet[1].uuid, timedelta(seconds=10))
    assert fleet_overview(SETTINGS)["online"] == 2
    narrow = fleet_overview(replace(SETTINGS, device_online_within_s=60))
    assert (narrow["online"], narrow["online_within_s"]) == (1, 60)


def test_the_count_is_periodic_work_at_its_setting(app, settings):
    often = replace(settings, fleet_count_interval_s=7, device_online_within_s=120)
    assert fleet_count.SWEEP in SWEEPS
    assert fleet_count.SWEEP.task_name == "maintenance.count_fleet"
    assert beat_schedule(often)["count-fleet"]["schedule"] == 7.0
    fleet = register_fleet(2)
    seen(fleet[0].uuid, timedelta(seconds=60))
    seen(fleet[1].uuid, timedelta(seconds=600))
    run_sweep(fleet_count.SWEEP, often)
    counted = fleet_overview(often)
    assert (counted["total"], counted["online"], counted["online_within_s"]) == (2, 1, 120)


def test_the_dashboard_and_devices_page_show_the_counted_fleet(app, client):
    fleet = register_fleet(3)
    seen(fleet[0].uuid, timedelta(seconds=5))
    count_fleet(datetime.now(UTC), app.config["SETTINGS"].device_online_within_s)
    sign_in(client, TEST_ADMIN_TOKEN)
    dashboard = client.get("/portal/executions").get_data(as_text=True)
    assert '<span class="n">1/3</span><span class="what">devices online</span>' in dashboard
    assert "devices online counted <time" in dashboard
    devices_page = client.get("/portal/devices").get_data(as_text=True)
    assert '<span class="n">1</span><span class="what">online (seen in 5 min)</span>' \
        in devices_page
    assert "Fleet counted <time" in devices_page
