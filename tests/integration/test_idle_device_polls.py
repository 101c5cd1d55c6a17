"""Polls answered from the idle devices an API process keeps in memory: they must never hide a
job, a token change or a deletion once PostgreSQL's notification of it has been handled."""

from __future__ import annotations

import threading

import psycopg
import pytest
from job_rows import insert_job, next_url, register_fleet, set_row_status, status_url
from processes import wait_until

from dispatcher.db import QUERIES
from dispatcher.fleet.tokens import hash_token
from dispatcher.poll import idle, sightings

NO_JOB = "No pending jobs"


@pytest.fixture
def known(app, database_url):
    listener = idle.start(database_url)
    wait_until(lambda: listener.enabled, 10, "the idle devices loaded")
    yield listener
    idle.stop()


def poll(client, device, **headers):
    return client.get(next_url(device), headers={**device.headers, **headers})


def is_known_idle(known, device) -> bool:
    return known.is_idle(device.uuid, hash_token(device.token))


def forgotten(known, device) -> None:
    wait_until(lambda: not is_known_idle(known, device), 10, "the notification handled")


def test_a_device_registered_idle_is_learnt_and_answered_from_memory(client, known):
    [pi] = register_fleet(1)
    assert not is_known_idle(known, pi)  # registered after the load
    assert poll(client, pi).get_json()["message"] == NO_JOB
    assert is_known_idle(known, pi)
    assert poll(client, pi).get_json()["message"] == NO_JOB


def test_a_queued_job_is_handed_out_on_the_first_poll_after_its_notification(client, known):
    pi, other = register_fleet(2)
    for device in (pi, other):
        poll(client, device)
        assert is_known_idle(known, device)
    job_id = insert_job([pi])
    forgotten(known, pi)
    assert poll(client, pi).get_json()["jobId"] == str(job_id)
    assert is_known_idle(known, other)  # only the devices named are forgotten


def test_a_row_moved_back_to_queued_is_handed_out(client, known):
    [pi] = register_fleet(1)
    job_id = insert_job([pi])
    set_row_status(job_id, pi, "SUCCEEDED")
    assert poll(client, pi).get_json()["message"] == NO_JOB
    assert is_known_idle(known, pi)
    set_row_status(job_id, pi, "QUEUED")
    forgotten(known, pi)
    assert poll(client, pi).get_json()["jobId"] == str(job_id)


def test_a_held_back_row_is_handed_out_once_released(client, known, database_url):
    """A rollout release (or a maintenance window opening) notifies no one: a device with a
    pending row it may not run yet is never known idle, so its release reaches the next poll."""
    [pi] = register_fleet(1)
    job_id = insert_job([pi])
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("UPDATE device_job_status SET released_at = NULL WHERE job_id = %s",
                     (job_id,))
        assert poll(client, pi).get_json()["message"] == NO_JOB
        assert poll(client, pi).get_json()["message"] == NO_JOB
        assert not is_known_idle(known, pi)
        conn.execute("UPDATE device_job_status SET released_at = now() WHERE job_id = %s",
                     (job_id,))
    assert poll(client, pi).get_json()["jobId"] == str(job_id)


def test_a_finished_job_makes_the_device_idle_again(client, known):
    [pi] = register_fleet(1)
    job_id = insert_job([pi])
    assert poll(client, pi).get_json()["jobId"] == str(job_id)
    assert not is_known_idle(known, pi)
    set_row_status(job_id, pi, "SUCCEEDED")
    assert poll(client, pi).get_json()["message"] == NO_JOB
    assert is_known_idle(known, pi)


def test_a_rotated_token_stops_working_and_the_new_one_works(client, known, admin_headers):
    [pi] = register_fleet(1)
    poll(client, pi)
    assert is_known_idle(known, pi)
    rotated = client.post(f"/api/v1/devices/{pi.uuid}/token", headers=admin_headers)
    new_token = rotated.get_json()["device_token"]
    forgotten(known, pi)
    assert poll(client, pi).status_code == 401
    new_headers = {"Authorization": f"Bearer {new_token}"}
    assert client.get(next_url(pi), headers=new_headers).get_json()["message"] == NO_JOB


def test_a_deleted_device_is_refused(client, known, admin_headers):
    [pi] = register_fleet(1)
    poll(client, pi)
    assert is_known_idle(known, pi)
    assert client.delete(f"/api/v1/devices/{pi.uuid}", headers=admin_headers).status_code == 200
    forgotten(known, pi)
    assert poll(client, pi).status_code == 401


def test_a_fresh_poll_is_answered_by_the_database(client, known):
    [pi] = register_fleet(1)
    poll(client, pi)
    # Hold the listener back: the notification of the job below cannot be handled yet.
    with known._lock:
        job_id = insert_job([pi])
        assert poll(client, pi).get_json()["message"] == NO_JOB  # the memory lags the commit
        fresh = poll(client, pi, **{"Cache-Control": "no-cache"})
        assert fresh.get_json()["jobId"] == str(job_id)
    forgotten(known, pi)
    assert poll(client, pi).get_json()["jobId"] == str(job_id)


def test_losing_the_listener_forgets_everything_until_it_has_loaded_again(
    client, known, database_url
):
    busy, quiet = register_fleet(2)
    for device in (busy, quiet):
        poll(client, device)
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                     " WHERE application_name = %s AND datname = current_database()",
                     (idle.LISTENER_NAME,))
        wait_until(lambda: not known.enabled, 5, "the knowledge dropped")
        assert not is_known_idle(known, quiet)
        job_id = insert_job([busy])  # while nobody listens
    assert poll(client, busy).get_json()["jobId"] == str(job_id)
    wait_until(lambda: known.enabled, 10, "the listener back")
    assert is_known_idle(known, quiet)  # loaded again
    assert not is_known_idle(known, busy)
    assert poll(client, busy).get_json()["jobId"] == str(job_id)


def test_a_rotated_token_on_a_report_is_refused_before_its_body_is_read(client, known,
                                                                        admin_headers):
    """The idle devices are the one cache of verified tokens: the notification of a rotation
    forgets the old token for the status report as well as for the poll."""
    [pi] = register_fleet(1)
    poll(client, pi)
    job_id = insert_job([pi])
    forgotten(known, pi)
    assert poll(client, pi).get_json()["jobId"] == str(job_id)
    assert known.knows_token(pi.uuid, hash_token(pi.token))
    client.post(f"/api/v1/devices/{pi.uuid}/token", headers=admin_headers)
    wait_until(lambda: not known.knows_token(pi.uuid, hash_token(pi.token)), 10,
               "the notification handled")
    refused = client.patch(status_url(pi, job_id), json={"status": "NOT-A-STATUS"},
                           headers=pi.headers)
    assert refused.status_code == 401


def test_a_busy_device_loaded_by_the_listener_reports_with_one_statement(
    client, database_url, monkeypatch
):
    [pi] = register_fleet(1)
    job_id = insert_job([pi])
    listener = idle.start(database_url)
    try:
        wait_until(lambda: listener.enabled, 10, "the idle devices loaded")
        # The request that finds the sightings' interval over writes their batch itself: the
        # next one is a whole interval away after this flush.
        sightings.of_this_process.flush()
        sent: list[str] = []
        execute = psycopg.Cursor.execute
        request_thread = threading.get_ident()

        def counting(cursor, query, *args, **kwargs):
            if threading.get_ident() == request_thread:  # not the flush timer
                sent.append(query)
            return execute(cursor, query, *args, **kwargs)

        monkeypatch.setattr(psycopg.Cursor, "execute", counting)
        moved = client.patch(status_url(pi, job_id), json={"status": "IN_PROGRESS"},
                             headers=pi.headers)
        assert moved.status_code == 200
        assert sent == [QUERIES["report_device_job"]]
    finally:
        idle.stop()


def test_the_devices_load_in_pages_and_a_change_between_pages_is_not_answered_from_them(
    client, database_url, monkeypatch
):
    """The listener reads the devices a page at a time (a million read at once held a worker
    for longer than its heartbeat allows), and a job committed while the pages are being read
    reaches the first poll answered from memory, for a device on a page read before the commit
    and for one on a page read after it."""
    devices = register_fleet(7)
    monkeypatch.setattr(idle, "SNAPSHOT_PAGE_ROWS", 2)
    pages: list[list[tuple]] = []
    jobs = {}
    fetchmany = psycopg.ServerCursor.fetchmany

    def fetching(cursor, size=0):
        page = fetchmany(cursor, size)
        pages.append(page)
        if len(pages) == 1:  # between the first page and the second
            read = {row[0] for row in page}
            before = next(d for d in devices if d.uuid.bytes in read)
            after = next(d for d in devices if d.uuid.bytes not in read)
            jobs.update((device, insert_job([device])) for device in (before, after))
        return page

    # The listener's waits for notifications once loaded are held until the first answers are
    # checked: what the knowledge answers first is what it knew when it was turned on.
    looked = threading.Event()
    notifies = psycopg.Connection.notifies

    def held(conn, *, timeout=None, stop_after=None):
        if timeout:
            looked.wait(10)
        return notifies(conn, timeout=timeout, stop_after=stop_after)

    monkeypatch.setattr(psycopg.ServerCursor, "fetchmany", fetching)
    monkeypatch.setattr(psycopg.Connection, "notifies", held)
    listener = idle.start(database_url)
    try:
        wait_until(lambda: listener.enabled, 10, "the idle devices loaded")
        assert len([page for page in pages if page]) == 4
        for device, job_id in jobs.items():
            assert not is_known_idle(listener, device)
            assert poll(client, device).get_json()["jobId"] == str(job_id)
        quiet = [device for device in devices if device not in jobs]
        assert all(is_known_idle(listener, device) for device in quiet)
        assert poll(client, quiet[0]).get_json()["message"] == NO_JOB
    finally:
        looked.set()
        idle.stop()
