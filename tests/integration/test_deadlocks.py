"""Two processes writing the same rows: a deadlock PostgreSQL breaks is a retry, never logged as
a database outage, and the sightings writes (every API process writing overlapping device rows
at once) never wait for a row another statement holds, so they cannot deadlock at all."""

from __future__ import annotations

import logging
import threading

import psycopg
from job_rows import register_fleet

from dispatcher import db
from dispatcher.errors import RolledBack
from dispatcher.poll.sightings import Sightings

LOCK_TIMEOUT = "SET LOCAL lock_timeout = '60s'"


def test_a_deadlock_is_answered_retry_and_is_not_an_outage(settings, caplog):
    db.configure(settings)
    first, second = register_fleet(2)
    both_hold_one = threading.Barrier(2)
    errors: list[BaseException] = []

    def update_in_order(order: list) -> None:
        try:
            with db.transaction() as c:
                c.conn.execute(LOCK_TIMEOUT)
                for i, device in enumerate(order):
                    c.conn.execute("UPDATE devices SET updated_at = now() WHERE uuid = %s",
                                   (device.uuid,))
                    if i == 0:
                        both_hold_one.wait()
        except BaseException as exc:  # noqa: BLE001 - the test looks at what each one raised
            errors.append(exc)

    with caplog.at_level(logging.WARNING, logger="dispatcher.db"):
        threads = [threading.Thread(target=update_in_order, args=(order,))
                   for order in ([first, second], [second, first])]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert len(errors) == 1, errors
    assert isinstance(errors[0], RolledBack)
    assert errors[0].http_status == 503 and errors[0].retry_after_s == 1
    assert not db.outage.active
    messages = [record.getMessage() for record in caplog.records]
    assert not [m for m in messages if m.startswith("database unavailable")], messages
    assert [m for m in messages if m.startswith("transaction rolled back")], messages


def test_the_deadlock_answers_503_with_retry_after_through_the_api(app, client):
    from dispatcher.errors import RolledBack as Raised

    @app.route("/test-rolled-back")
    def rolled_back():
        raise Raised("The change collided with another one; retry.")

    answer = client.get("/test-rolled-back")
    assert answer.status_code == 503
    assert answer.headers["Retry-After"] == "1"
    assert answer.get_json()["code"] == 503


def test_sightings_pass_over_a_device_row_another_transaction_holds(settings, database_url):
    db.configure(settings)
    held, free = register_fleet(2)
    sightings = Sightings()
    sightings.note(held.uuid)
    sightings.note(free.uuid)
    with psycopg.connect(database_url) as holder:
        holder.execute("SELECT 1 FROM devices WHERE uuid = %s FOR UPDATE", (held.uuid,))
        written: list[int] = []
        flush = threading.Thread(target=lambda: written.append(sightings.flush()))
        flush.start()
        flush.join(timeout=60)
        waited = flush.is_alive()
        holder.rollback()
        flush.join()
    assert not waited, "the sightings write waited for a row another transaction holds"
    assert written == [1]
    with psycopg.connect(database_url) as conn:
        seen = dict(conn.execute(
            "SELECT uuid, last_seen_at IS NOT NULL FROM devices WHERE uuid = ANY(%s)",
            ([held.uuid, free.uuid],)).fetchall())
    assert seen == {held.uuid: False, free.uuid: True}
