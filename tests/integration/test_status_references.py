"""A device's row of a job always refers to a device and a job that exist.

The references are checked once per inserting statement (migration 014) rather than by a
foreign key per row: these tests hold the guarantees a foreign key gave, including against a
device deleted while a fan-out chunk that names it is still uncommitted.
"""

from __future__ import annotations

import threading
import time
import uuid

import psycopg
import pytest
from job_rows import insert_job, register_fleet

from dispatcher import db


def rows_of(*, job_id=None, device_uuid=None) -> int:
    with db.pool().connection() as conn:
        return conn.execute(
            "SELECT count(*) AS n FROM device_job_status WHERE (%(job)s::uuid IS NULL OR"
            " job_id = %(job)s) AND (%(device)s::uuid IS NULL OR device_uuid = %(device)s)",
            {"job": job_id, "device": device_uuid}).fetchone()["n"]


def counted(job_id) -> int:
    with db.pool().connection() as conn:
        return conn.execute("SELECT coalesce(sum(n), 0) AS n FROM job_status_counts"
                            " WHERE job_id = %s", (job_id,)).fetchone()["n"]


def wait_until(check, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.02)


def test_a_row_for_a_device_that_does_not_exist_is_refused(app):
    fleet = register_fleet(2)
    job_id = insert_job(fleet[:1])
    with (pytest.raises(psycopg.errors.ForeignKeyViolation, match="device"),
          db.pool().connection() as conn):
        conn.execute("INSERT INTO device_job_status (job_id, device_uuid)"
                     " VALUES (%s, %s), (%s, %s)", (job_id, fleet[1].uuid, job_id, uuid.uuid4()))
    assert rows_of(job_id=job_id) == 1


def test_a_row_for_a_job_that_does_not_exist_is_refused(app):
    fleet = register_fleet(1)
    with (pytest.raises(psycopg.errors.ForeignKeyViolation, match="job"),
          db.pool().connection() as conn):
        conn.execute(INSERT_ROW, (uuid.uuid4(), fleet[0].uuid))
    assert rows_of(device_uuid=fleet[0].uuid) == 0


def test_deleting_a_device_deletes_its_rows_and_uncounts_them(app):
    fleet = register_fleet(3)
    job_id = insert_job(fleet)
    assert counted(job_id) == 3
    with db.pool().connection() as conn:
        conn.execute("DELETE FROM devices WHERE uuid = %s", (fleet[0].uuid,))
    assert rows_of(device_uuid=fleet[0].uuid) == 0
    assert rows_of(job_id=job_id) == 2
    assert counted(job_id) == 2


def test_deleting_a_job_deletes_its_rows(app):
    fleet = register_fleet(3)
    job_id, other = insert_job(fleet), insert_job(fleet)
    with db.pool().connection() as conn:
        conn.execute("DELETE FROM job_executions WHERE job_id = %s", (job_id,))
    assert rows_of(job_id=job_id) == 0
    assert rows_of(job_id=other) == 3


class Blocked:
    """A statement run on a connection of its own, in a thread, that is to wait on a lock."""

    def __init__(self, database_url: str, statement: str, params: tuple) -> None:
        self.conn = psycopg.connect(database_url, autocommit=True)
        self.pid = self.conn.info.backend_pid
        self.failures: list[Exception] = []
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._run, args=(statement, params))
        self.thread.start()

    def _run(self, statement: str, params: tuple) -> None:
        try:
            self.conn.execute(statement, params)
        except psycopg.errors.ForeignKeyViolation as exc:
            self.failures.append(exc)
        self.done.set()

    def waiting(self, watcher: psycopg.Connection) -> bool:
        return watcher.execute("SELECT EXISTS (SELECT 1 FROM pg_locks WHERE pid = %s AND"
                               " NOT granted)", (self.pid,)).fetchone()[0]

    def finish(self) -> None:
        self.thread.join(10)
        self.conn.close()


INSERT_ROW = "INSERT INTO device_job_status (job_id, device_uuid) VALUES (%s, %s)"


def test_a_device_deleted_while_a_chunk_naming_it_is_uncommitted_takes_the_chunks_rows(
        app, database_url):
    """The delete waits for the inserting transaction, then removes what it inserted: no row
    is left behind for a device that is gone."""
    fleet = register_fleet(2)
    job_id = insert_job(fleet[:1])
    with psycopg.connect(database_url) as chunk, psycopg.connect(database_url) as watcher:
        chunk.execute(INSERT_ROW, (job_id, fleet[1].uuid))
        delete = Blocked(database_url, "DELETE FROM devices WHERE uuid = %s", (fleet[1].uuid,))
        wait_until(lambda: delete.waiting(watcher))
        assert not delete.done.is_set()
        chunk.commit()
        delete.finish()
    assert delete.done.is_set()
    assert rows_of(device_uuid=fleet[1].uuid) == 0
    assert rows_of(job_id=job_id) == 1
    assert counted(job_id) == 1


def test_a_chunk_naming_a_device_whose_delete_is_uncommitted_fails_once_it_commits(
        app, database_url):
    fleet = register_fleet(2)
    job_id = insert_job(fleet[:1])
    with psycopg.connect(database_url) as deleter, psycopg.connect(database_url) as watcher:
        deleter.execute("DELETE FROM devices WHERE uuid = %s", (fleet[1].uuid,))
        insert = Blocked(database_url, INSERT_ROW, (job_id, fleet[1].uuid))
        wait_until(lambda: insert.waiting(watcher))
        deleter.commit()
        insert.finish()
    assert len(insert.failures) == 1
    assert rows_of(device_uuid=fleet[1].uuid) == 0
    assert counted(job_id) == 1


def test_a_job_deleted_while_rows_for_it_are_uncommitted_takes_them(app, database_url):
    fleet = register_fleet(2)
    job_id = insert_job(fleet[:1])
    with psycopg.connect(database_url) as chunk, psycopg.connect(database_url) as watcher:
        chunk.execute(INSERT_ROW, (job_id, fleet[1].uuid))
        delete = Blocked(database_url, "DELETE FROM job_executions WHERE job_id = %s",
                         (job_id,))
        wait_until(lambda: delete.waiting(watcher))
        chunk.commit()
        delete.finish()
    assert rows_of(job_id=job_id) == 0
