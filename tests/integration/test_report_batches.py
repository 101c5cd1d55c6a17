"""Status reports arriving together are applied in one statement and one commit, and each
device is answered exactly as if its report had been alone; a process killed mid-batch
acknowledged nothing, and the devices' retries succeed."""

from __future__ import annotations

import threading
from dataclasses import replace

import psycopg
import pytest
from job_rows import insert_job, register_fleet, set_row_status
from json_http import JsonHttp
from processes import wait_until

from dispatcher import db
from dispatcher.errors import InvalidInput
from dispatcher.fleet.tokens import hash_token
from dispatcher.jobs import report_batches, reports
from dispatcher.jobs.report_batches import ReportBatches

# The batch statement (report_batches.sql) and the single one (reports.sql), by their text.
REPORTS = ("(query LIKE '%WITH input AS MATERIALIZED%' OR query LIKE '%WITH caller AS%')"
           " AND pid <> pg_backend_pid()")
ACTIVITY = "SELECT count(*) FROM pg_stat_activity WHERE "
REPORTS_WAITING = f"{ACTIVITY} wait_event_type = 'Lock' AND {REPORTS}"
REPORTS_RUNNING = f"{ACTIVITY} state = 'active' AND {REPORTS}"


@pytest.fixture
def batches(monkeypatch):
    """A batcher that waits for ``expected`` reports before applying them, so that the reports
    a test sends at once are applied in one batch."""

    def make(expected: int) -> ReportBatches:
        batcher = ReportBatches(window_s=60.0, max_batch=expected)
        monkeypatch.setattr(report_batches, "of_this_process", batcher)
        return batcher

    return make


def send_together(app, requests: list[tuple[str, dict, dict]]) -> list:
    """PATCH every (path, body, headers) from a thread of its own; the answers, in order."""
    answers: list = [None] * len(requests)

    def send(i: int) -> None:
        path, body, headers = requests[i]
        answers[i] = app.test_client().patch(path, json=body, headers=headers)

    threads = [threading.Thread(target=send, args=(i,)) for i in range(len(requests))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return answers


def report_path(device, job_id) -> str:
    return f"/api/v1/devices/{device.uuid}/jobs/{job_id}/status"


def test_each_report_of_a_batch_gets_its_own_answer(app, batches):
    fleet = register_fleet(7)
    done, late, succeeds, progresses, wrong_token, unknown_token, no_row = fleet
    job_id = insert_job(fleet[:6])
    set_row_status(job_id, done, "SUCCEEDED")
    set_row_status(job_id, late, "SUCCEEDED")
    # The two refused tokens are refused before the statement (api.auth), the rest in it.
    batcher = batches(5)
    answers = send_together(app, [
        (report_path(done, job_id), {"status": "SUCCEEDED", "exit_code": 0}, done.headers),
        (report_path(late, job_id), {"status": "IN_PROGRESS"}, late.headers),
        (report_path(succeeds, job_id), {"status": "SUCCEEDED", "exit_code": 0,
                                         "stdout": "ok"}, succeeds.headers),
        (report_path(progresses, job_id), {"status": "IN_PROGRESS",
                                           "step_timeout_minutes": 5}, progresses.headers),
        (report_path(wrong_token, job_id), {"status": "IN_PROGRESS"}, succeeds.headers),
        (report_path(unknown_token, job_id), {"status": "IN_PROGRESS"},
         {"Authorization": "Bearer not-a-token"}),
        (report_path(no_row, job_id), {"status": "IN_PROGRESS"}, no_row.headers),
    ])
    assert batcher.last_batch_size == 5
    codes = [answer.status_code for answer in answers]
    assert codes == [200, 409, 200, 200, 403, 401, 404], [a.get_json() for a in answers]
    assert answers[0].get_json()["status"] == "SUCCEEDED"
    conflict = answers[1].get_json()
    assert conflict["current_status"] == "SUCCEEDED"
    stored = answers[2].get_json()
    assert (stored["status"], stored["stdout"], stored["exit_code"]) == ("SUCCEEDED", "ok", 0)
    assert stored["device_uuid"] == str(succeeds.uuid)
    assert stored["device_name"] == succeeds.name
    assert answers[3].get_json()["status"] == "IN_PROGRESS"
    with db.connect() as c:
        rows = {r["device_uuid"]: r["status"] for r in c.conn.execute(
            "SELECT device_uuid, status FROM device_job_status WHERE job_id = %s",
            (job_id,)).fetchall()}
        deadline_set = c.conn.execute(
            "SELECT timeout_at IS NOT NULL AS set FROM device_job_status"
            " WHERE job_id = %s AND device_uuid = %s", (job_id, progresses.uuid)).fetchone()
        events = c.conn.execute(
            "SELECT action, device_uuid, actor FROM job_events WHERE job_id = %s"
            " ORDER BY id", (job_id,)).fetchall()
    assert rows[succeeds.uuid] == "SUCCEEDED" and rows[progresses.uuid] == "IN_PROGRESS"
    assert rows[wrong_token.uuid] == "QUEUED" and rows[unknown_token.uuid] == "QUEUED"
    assert deadline_set["set"]
    assert sorted(e["device_uuid"] for e in events
                  if e["action"] == "device_job.status_changed") == sorted(
        [succeeds.uuid, progresses.uuid])
    started = [e for e in events if e["action"] == "job.started"]
    assert len(started) == 1 and started[0]["actor"].startswith("device:")
    assert events[-1]["action"] == "job.started"


def test_a_batch_counts_exactly_and_completes_its_job_once(app, batches, settings):
    fleet = register_fleet(8)
    job_id = insert_job(fleet)
    batcher = batches(8)
    answers = send_together(app, [
        (report_path(device, job_id),
         {"status": "SUCCEEDED" if i % 4 else "FAILED", "exit_code": 0 if i % 4 else 1},
         device.headers)
        for i, device in enumerate(fleet)])
    assert batcher.last_batch_size == 8
    assert [a.status_code for a in answers] == [200] * 8
    with db.connect() as c:
        counts = {r["status"]: r["n"] for r in c.conn.execute(
            "SELECT status, sum(n)::int AS n FROM job_status_counts WHERE job_id = %s"
            " GROUP BY status HAVING sum(n) <> 0", (job_id,)).fetchall()}
        job = c.conn.execute("SELECT status, succeeded_devices, failed_devices"
                             " FROM job_executions WHERE job_id = %s", (job_id,)).fetchone()
        completed = c.conn.execute(
            "SELECT count(*) AS n FROM job_events WHERE job_id = %s"
            " AND action = 'job.completed'", (job_id,)).fetchone()["n"]
    assert counts == {"SUCCEEDED": 6, "FAILED": 2}
    assert job == {"status": "FAILED", "succeeded_devices": 6, "failed_devices": 2}
    assert completed == 1


def test_a_report_the_database_refuses_fails_alone_in_its_batch(settings, batches):
    db.configure(settings)
    fleet = register_fleet(3)
    job_id = insert_job(fleet)
    batcher = batches(3)
    # The API's schema refuses such a value; here it reaches the statement.
    reports_sent = [{"status": "SUCCEEDED", "exit_code": 0},
                    {"status": "IN_PROGRESS", "step_timeout_minutes": 2**40},
                    {"status": "IN_PROGRESS"}]
    answers: list = [None] * 3

    def send(i: int) -> None:
        device = fleet[i]
        try:
            answers[i] = reports.apply_report(device.uuid, job_id, reports_sent[i], 1024,
                                              f"device:{device.uuid}", hash_token(device.token))
        except Exception as exc:  # noqa: BLE001 - the test looks at what each one raised
            answers[i] = exc

    threads = [threading.Thread(target=send, args=(i,)) for i in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert batcher.last_batch_size == 3
    assert answers[0].stored["status"] == "SUCCEEDED"
    assert isinstance(answers[1], InvalidInput)
    assert answers[2].stored["status"] == "IN_PROGRESS"


def test_a_process_killed_mid_batch_acknowledged_nothing_and_the_retries_succeed(
        settings, server_processes, database_url):
    db.configure(settings)
    fleet = register_fleet(3)
    job_id = insert_job(fleet)
    # Reports sent together wait five seconds for each other; the job row is held, so their
    # batch statement (which starts the job) waits on it: the process is killed while it does.
    api = server_processes.start_api(replace(settings, report_batch_window_ms=5_000))
    answers: list = []

    def report(device) -> None:
        with JsonHttp(api.url, timeout_s=120) as http:
            try:
                answers.append(http.request("PATCH", report_path(device, job_id),
                                            {"status": "SUCCEEDED", "exit_code": 0},
                                            device.headers)[0])
            except OSError as exc:
                answers.append(type(exc).__name__)

    with psycopg.connect(database_url) as holder, \
            psycopg.connect(database_url, autocommit=True) as watcher:
        holder.execute("SELECT 1 FROM job_executions WHERE job_id = %s FOR UPDATE", (job_id,))
        threads = [threading.Thread(target=report, args=(device,)) for device in fleet]
        for thread in threads:
            thread.start()
        wait_until(lambda: watcher.execute(REPORTS_WAITING).fetchone()[0] >= 1, 60,
                   "a batch statement waiting on the job row")
        api.kill()
        for thread in threads:
            thread.join()
        holder.rollback()
        # A statement runs on once the lock is free and commits, unanswered: the process that
        # would have answered it (and checked the job's completion) is gone.
        wait_until(lambda: watcher.execute(REPORTS_RUNNING).fetchone()[0] == 0, 60,
                   "the statements of the killed process to end")
    assert len(answers) == 3 and 200 not in answers, answers

    # The devices retry, to a process started again.
    api = server_processes.start_api(settings)
    with JsonHttp(api.url) as http:
        codes = [http.request("PATCH", report_path(device, job_id),
                              {"status": "SUCCEEDED", "exit_code": 0}, device.headers)[0]
                 for device in fleet]
    assert codes == [200] * 3
    with psycopg.connect(database_url) as conn:
        job = conn.execute("SELECT status, succeeded_devices FROM job_executions"
                           " WHERE job_id = %s", (job_id,)).fetchone()
        completed = conn.execute("SELECT count(*) FROM job_events WHERE job_id = %s"
                                 " AND action = 'job.completed'", (job_id,)).fetchone()[0]
        counts = conn.execute("SELECT status, sum(n)::int FROM job_status_counts"
                              " WHERE job_id = %s GROUP BY status HAVING sum(n) <> 0",
                              (job_id,)).fetchall()
    assert job == ("SUCCEEDED", 3) and completed == 1
    assert counts == [("SUCCEEDED", 3)]
