"""The device protocol: polling for the next job and reporting status, through the API."""

from __future__ import annotations

import itertools
import time
import uuid

import psycopg
import pytest
from job_rows import (
    events,
    insert_job,
    live_counters,
    next_url,
    register_fleet,
    set_row_status,
    status_url,
)

from dispatcher import db
from dispatcher.jobs import progress, states
from dispatcher.poll import sightings
from schemas import vocabulary

DEVICE_REPORTED = sorted(vocabulary.DEVICE_REPORTED)


def device_row(job_id, device) -> dict:
    return db.one("get_device_job", job_id=job_id, device_uuid=device.uuid)


def test_poll_without_jobs_says_so_with_a_poll_hint(client, settings):
    [pi] = register_fleet(1)
    response = client.get(next_url(pi), headers=pi.headers)
    assert response.status_code == 200
    assert response.get_json() == {
        "message": "No pending jobs", "pollAfterSeconds": settings.poll_after_s,
    }


def test_poll_answers_the_seed_shape_in_camel_case(client):
    [pi] = register_fleet(1)
    job_id = insert_job([pi], job_name="Health check")
    body = client.get(next_url(pi), headers=pi.headers).get_json()
    assert body["jobId"] == str(job_id)
    assert body["jobName"] == "Health check"
    assert body["jobDocument"]["steps"][0]["input"]["command"] == "df,-h"
    assert body["deviceUuid"] == str(pi.uuid)
    assert body["queuedAt"]
    assert (body["executionNumber"], body["versionNumber"], body["status"]) == (1, 1, "QUEUED")
    assert body["pollAfterSeconds"] == 30


def test_poll_resumes_the_in_progress_job_before_older_queued_ones(client):
    [pi] = register_fleet(1)
    older = insert_job([pi], job_name="older")
    newer = insert_job([pi], job_name="newer")
    assert client.get(next_url(pi), headers=pi.headers).get_json()["jobId"] == str(older)
    set_row_status(newer, pi, "IN_PROGRESS")
    body = client.get(next_url(pi), headers=pi.headers).get_json()
    assert (body["jobId"], body["status"]) == (str(newer), "IN_PROGRESS")


def test_poll_skips_terminal_rows_and_canceled_jobs(client, admin_headers):
    [pi] = register_fleet(1)
    done = insert_job([pi])
    set_row_status(done, pi, "SUCCEEDED")
    canceled = insert_job([pi])
    client.post(f"/api/v1/jobs/executions/{canceled}/cancel", headers=admin_headers)
    assert client.get(next_url(pi), headers=pi.headers).get_json()["message"] == "No pending jobs"


def test_a_device_token_polls_and_reports_only_for_its_own_device(client, admin_headers):
    pi_a, pi_b = register_fleet(2)
    job_b = insert_job([pi_b])
    assert client.get(next_url(pi_b), headers=pi_a.headers).status_code == 403
    assert client.get(f"/api/v1/devices/{pi_b.uuid}/jobs", headers=pi_a.headers).status_code == 403
    report = client.patch(status_url(pi_b, job_b), json={"status": "SUCCEEDED"},
                          headers=pi_a.headers)
    assert report.status_code == 403
    # Under its own uuid, device A has no such job.
    own = client.patch(status_url(pi_a, job_b), json={"status": "SUCCEEDED"},
                       headers=pi_a.headers)
    assert own.status_code == 404
    assert device_row(job_b, pi_b)["status"] == "QUEUED"
    assert client.get(next_url(pi_a)).status_code == 401
    assert client.get(next_url(pi_a), headers=admin_headers).status_code == 403


def test_a_report_needs_this_devices_own_token(client, admin_headers, viewer_headers):
    pi, other = register_fleet(2)
    job_id = insert_job([pi])
    url = status_url(pi, job_id)
    # No token: refused before the body is read, whatever it is.
    response = client.patch(url, data="{not json", content_type="application/json")
    assert (response.status_code, response.get_json()["message"]) == (401, "Missing bearer token")
    for headers, code in (({"Authorization": "Bearer not-a-token"}, 401),
                          (other.headers, 403), (admin_headers, 403), (viewer_headers, 403)):
        response = client.patch(url, json={"status": "IN_PROGRESS"}, headers=headers)
        assert response.status_code == code, headers
        assert response.get_json()["code"] == code
    assert device_row(job_id, pi)["version_number"] == 1
    assert events(job_id) == []


def test_a_report_starts_the_job_and_sets_the_deadline_in_its_one_statement(client):
    [pi] = register_fleet(1)
    job_id = insert_job([pi])
    with db.pool().connection() as conn:
        conn.execute("UPDATE job_executions SET timeout_config = %s WHERE job_id = %s",
                     (db.jsonb({"in_progress_timeout_minutes": 60}), job_id))

    def report(**body) -> dict:
        response = client.patch(status_url(pi, job_id), headers=pi.headers,
                                json={"status": "IN_PROGRESS", **body})
        assert response.status_code == 200, response.get_json()
        with db.pool().connection() as conn:
            return conn.execute(
                "SELECT extract(epoch FROM timeout_at - started_at) / 60 AS after_start,"
                " extract(epoch FROM timeout_at - now()) / 60 AS from_now"
                " FROM device_job_status WHERE job_id = %s", (job_id,)).fetchone()

    assert round(report()["after_start"]) == 60  # the job's timeout from the start
    assert round(report(step_timeout_minutes=5)["from_now"]) == 5  # a step's, sooner
    assert round(report()["from_now"]) == 5  # no step value: kept
    assert round(report(step_timeout_minutes=-1)["after_start"]) == 60  # cleared
    assert round(report(step_timeout_minutes=600)["after_start"]) == 60  # never later
    trail = [(e["action"], e["actor"]) for e in events(job_id)]
    assert trail[:2] == [("device_job.status_changed", f"device:{pi.uuid}"),
                         ("job.started", f"device:{pi.uuid}")]
    assert len(trail) == 6
    assert progress.status_counts(job_id)["IN_PROGRESS"] == 1
    with db.pool().connection() as conn:
        job = conn.execute("SELECT status FROM job_executions WHERE job_id = %s",
                           (job_id,)).fetchone()
    assert job["status"] == "IN_PROGRESS"


@pytest.mark.parametrize(
    ("source", "target"), list(itertools.product(vocabulary.DEVICE_STATUSES, DEVICE_REPORTED))
)
def test_every_device_report_follows_the_state_table(client, source, target):
    [pi] = register_fleet(1)
    job_id = insert_job([pi])
    set_row_status(job_id, pi, source)
    response = client.patch(status_url(pi, job_id), json={"status": target}, headers=pi.headers)
    body = response.get_json()
    if states.is_allowed(source, target, states.Actor.DEVICE):
        assert response.status_code == 200, body
        assert body["status"] == target
        assert body["version_number"] == 2
        assert len(events(job_id, "device_job.status_changed")) == 1
    elif source == target:  # a terminal status repeated: accepted, nothing changes
        assert response.status_code == 200, body
        assert (body["status"], body["version_number"]) == (source, 1)
        assert events(job_id, "device_job.status_changed") == []
    else:
        assert response.status_code == 409, body
        assert body["current_status"] == source
        assert body["version_number"] == 1
        assert device_row(job_id, pi)["status"] == source
        assert events(job_id, "device_job.status_changed") == []


@pytest.mark.parametrize("status", ["CANCELED", "TIMED_OUT", "REMOVED", "QUEUED", "DONE"])
def test_statuses_only_the_server_sets_are_a_bad_request_from_a_device(client, status):
    [pi] = register_fleet(1)
    job_id = insert_job([pi])
    response = client.patch(status_url(pi, job_id), json={"status": status}, headers=pi.headers)
    assert response.status_code == 400
    assert "status" in response.get_json()["errors"]


def test_a_full_run_sets_times_outputs_and_last_seen(client):
    [pi] = register_fleet(1)
    job_id = insert_job([pi])
    sightings.of_this_process.flush()  # the next flush is a whole interval away
    started = client.patch(status_url(pi, job_id), headers=pi.headers, json={
        "status": "IN_PROGRESS", "executed_steps": 2,
        "stdout": "Config backed up\nNew config downloaded",
    }).get_json()
    assert started["started_at"] and started["completed_at"] is None
    progress = client.patch(status_url(pi, job_id), headers=pi.headers, json={
        "status": "IN_PROGRESS", "executed_steps": 3, "status_details": {"step": "Test config"},
    }).get_json()
    assert progress["version_number"] == 3
    assert progress["stdout"] == "Config backed up\nNew config downloaded"
    done = client.patch(status_url(pi, job_id), headers=pi.headers, json={
        "status": "SUCCEEDED", "exit_code": 0, "executed_steps": 4,
        "stdout": "All steps completed successfully\nnginx reloaded",
    }).get_json()
    assert done["status"] == "SUCCEEDED" and done["version_number"] == 4
    assert done["started_at"] == started["started_at"]
    assert done["completed_at"] >= done["started_at"]
    assert (done["exit_code"], done["executed_steps"]) == (0, 4)
    assert done["stdout"] == "All steps completed successfully\nnginx reloaded"
    assert done["status_details"] == {"step": "Test config"}
    assert db.one("get_device", uuid=pi.uuid)["last_seen_at"] is None  # not written per report
    assert sightings.of_this_process.flush() == 1
    assert db.one("get_device", uuid=pi.uuid)["last_seen_at"] is not None
    trail = [(e["details"]["from"], e["details"]["to"])
             for e in events(job_id, "device_job.status_changed")]
    assert trail == [("QUEUED", "IN_PROGRESS"), ("IN_PROGRESS", "IN_PROGRESS"),
                     ("IN_PROGRESS", "SUCCEEDED")]


def test_the_same_terminal_report_twice_counts_once(client):
    [pi] = register_fleet(1)
    job_id = insert_job([pi])
    failure = {"status": "FAILED", "exit_code": 1, "stderr": "Error: Permission denied",
               "reason": "Insufficient permissions", "failed_step": "Restart Service"}
    first = client.patch(status_url(pi, job_id), json=failure, headers=pi.headers)
    again = client.patch(status_url(pi, job_id), json=failure, headers=pi.headers)
    assert first.status_code == again.status_code == 200
    assert again.get_json() == first.get_json()
    assert live_counters(job_id)["failed_devices"] == 1
    assert sum(progress.status_counts(job_id).values()) == 1
    assert len(events(job_id, "device_job.status_changed")) == 1


def test_a_late_progress_report_after_the_result_is_refused(client):
    [pi] = register_fleet(1)
    job_id = insert_job([pi])
    client.patch(status_url(pi, job_id), json={"status": "SUCCEEDED"}, headers=pi.headers)
    late = client.patch(status_url(pi, job_id), json={"status": "IN_PROGRESS"},
                        headers=pi.headers)
    assert late.status_code == 409
    assert late.get_json()["current_status"] == "SUCCEEDED"
    assert live_counters(job_id)["succeeded_devices"] == 1


def test_expected_version_gives_optimistic_locking(client):
    [pi] = register_fleet(1)
    job_id = insert_job([pi])
    stale = client.patch(status_url(pi, job_id), headers=pi.headers,
                         json={"status": "IN_PROGRESS", "expected_version": 7})
    assert stale.status_code == 409
    assert stale.get_json()["current_status"] == "QUEUED"
    assert stale.get_json()["version_number"] == 1
    ok = client.patch(status_url(pi, job_id), headers=pi.headers,
                      json={"status": "IN_PROGRESS", "expected_version": 1})
    assert ok.status_code == 200 and ok.get_json()["version_number"] == 2
    replayed = client.patch(status_url(pi, job_id), headers=pi.headers,
                            json={"status": "SUCCEEDED", "expected_version": 1})
    assert replayed.status_code == 409
    assert device_row(job_id, pi)["status"] == "IN_PROGRESS"


def test_output_keeps_its_last_bytes_with_a_truncated_flag(client, settings):
    [pi] = register_fleet(1)
    job_id = insert_job([pi])
    cap = settings.output_cap_bytes
    stdout = "head-" + "é" * cap + "-tail"
    body = client.patch(status_url(pi, job_id), headers=pi.headers, json={
        "status": "FAILED", "stdout": stdout, "stderr": "short",
    }).get_json()
    assert body["stdout_truncated"] is True and body["stderr_truncated"] is False
    assert body["stdout"].endswith("é-tail")
    assert len(body["stdout"].encode()) <= cap
    assert len(body["stdout"].encode()) >= cap - 1
    assert body["stderr"] == "short"


def test_unknown_job_or_device_is_not_found(client, admin_headers):
    [pi] = register_fleet(1)
    response = client.patch(status_url(pi, uuid.uuid4()), json={"status": "SUCCEEDED"},
                            headers=pi.headers)
    assert response.status_code == 404
    history = client.get(f"/api/v1/devices/{uuid.uuid4()}/jobs", headers=admin_headers)
    assert history.status_code == 404


def test_history_lists_every_execution_with_job_names_and_filters(
    client, admin_headers, viewer_headers
):
    [pi] = register_fleet(1)
    first = insert_job([pi], job_name="first")
    second = insert_job([pi], job_name="second")
    client.patch(status_url(pi, first), json={"status": "FAILED"}, headers=pi.headers)
    client.post(f"/api/v1/devices/{pi.uuid}/jobs/{first}/retry", headers=admin_headers)
    url = f"/api/v1/devices/{pi.uuid}/jobs"
    for headers in (pi.headers, admin_headers, viewer_headers):
        page = client.get(url, headers=headers).get_json()
        assert page["total"] == 3 and (page["limit"], page["offset"]) == (50, 0)
        assert [(j["job_name"], j["execution_number"], j["status"]) for j in page["jobs"]] == [
            ("first", 2, "QUEUED"), ("second", 1, "QUEUED"), ("first", 1, "FAILED"),
        ]
    queued = client.get(f"{url}?status=QUEUED&limit=1&offset=1", headers=pi.headers).get_json()
    assert queued["total"] == 2
    assert [j["job_id"] for j in queued["jobs"]] == [str(second)]
    assert client.get(f"{url}?status=WHATEVER", headers=pi.headers).status_code == 400
    assert client.get(f"{url}?limit=0", headers=pi.headers).status_code == 400


def test_polls_answer_after_postgres_dropped_their_connections(client, database_url):
    [pi] = register_fleet(1)
    assert client.get(next_url(pi), headers=pi.headers).get_json()["message"]
    job_id = insert_job([pi])
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                     " WHERE datname = current_database() AND pid <> pg_backend_pid()")
    response = client.get(next_url(pi), headers=pi.headers)
    assert response.status_code == 200
    assert response.get_json()["jobId"] == str(job_id)


def test_polls_record_last_seen_at_most_once_per_resolution(client):
    pi, idle = register_fleet(2)
    sightings.of_this_process.flush()
    for _ in range(3):
        client.get(next_url(pi), headers=pi.headers)
    assert db.one("get_device", uuid=pi.uuid)["last_seen_at"] is None  # not written per poll
    assert sightings.of_this_process.flush() == 1
    seen = db.one("get_device", uuid=pi.uuid)["last_seen_at"]
    assert seen is not None
    client.get(next_url(pi), headers=pi.headers)
    assert sightings.of_this_process.flush() == 0  # seen within the resolution: no write
    assert db.one("get_device", uuid=pi.uuid)["last_seen_at"] == seen
    assert db.one("get_device", uuid=idle.uuid)["last_seen_at"] is None


def test_poll_without_auth_checks_when_auth_is_disabled(settings):
    from dataclasses import replace

    from api.app import create_app

    open_client = create_app(replace(settings, auth_disabled=True)).test_client()
    [pi] = register_fleet(1)
    job_id = insert_job([pi])
    assert open_client.get(next_url(pi)).get_json()["jobId"] == str(job_id)
    assert open_client.get(f"/api/v1/devices/{uuid.uuid4()}/jobs/next").status_code == 404


def test_sightings_are_written_on_a_timer_when_no_request_comes(app):
    [pi] = register_fleet(1)
    recorder = sightings.Sightings(flush_interval_s=0.3)
    recorder.note(pi.uuid)  # not due yet: held
    assert db.one("get_device", uuid=pi.uuid)["last_seen_at"] is None
    recorder.keep_flushing()
    deadline = time.monotonic() + 10
    while db.one("get_device", uuid=pi.uuid)["last_seen_at"] is None:
        assert time.monotonic() < deadline, "the timer never wrote the sighting"
        time.sleep(0.05)
