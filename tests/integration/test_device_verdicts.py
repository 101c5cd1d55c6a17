"""The device's poll and status report answer every outcome from one statement: the statement
that does the work also says whether the token is the device's (and what it is when not), and
the row's current status and version, so a refusal costs no second round trip."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import psycopg
import pytest
from job_rows import insert_job, next_url, register_fleet, set_row_status, status_url

from dispatcher.db import QUERIES

NAMES = {text: name for name, text in QUERIES.items()}


@pytest.fixture
def statements(monkeypatch) -> Iterator[list[str]]:
    """The named queries this process sends to PostgreSQL, in order."""
    sent: list[str] = []
    execute = psycopg.Cursor.execute

    def counting(cursor, query, *args, **kwargs):
        sent.append(NAMES.get(query, str(query)))
        return execute(cursor, query, *args, **kwargs)

    monkeypatch.setattr(psycopg.Cursor, "execute", counting)
    yield sent


@pytest.fixture
def pi(client):
    """A device with a queued job, whose token this process has verified (it has polled)."""
    [device] = register_fleet(1)
    job_id = insert_job([device])
    assert client.get(next_url(device), headers=device.headers).get_json()["jobId"]
    return device, job_id


def report(client, device, job_id, headers=None, **body):
    return client.patch(status_url(device, job_id), json=body,
                        headers=device.headers if headers is None else headers)


def test_a_report_with_another_version_is_409_with_the_current_status_from_one_statement(
        client, pi, statements):
    device, job_id = pi
    stale = report(client, device, job_id, status="IN_PROGRESS", expected_version=7)
    assert stale.status_code == 409
    assert stale.get_json()["current_status"] == "QUEUED"
    assert stale.get_json()["version_number"] == 1
    assert statements == ["report_device_job"]


def test_a_change_the_state_table_refuses_is_409_from_one_statement(client, pi, statements):
    device, job_id = pi
    set_row_status(job_id, device, "CANCELED")
    statements.clear()
    late = report(client, device, job_id, status="SUCCEEDED")
    assert late.status_code == 409
    assert late.get_json()["current_status"] == "CANCELED"
    assert statements == ["report_device_job"]


def test_a_repeated_result_is_200_with_the_row_from_one_statement(client, pi, statements):
    device, job_id = pi
    first = report(client, device, job_id, status="SUCCEEDED", stdout="done")
    assert first.status_code == 200
    statements.clear()
    again = report(client, device, job_id, status="SUCCEEDED")
    assert again.status_code == 200
    assert again.get_json() == first.get_json()
    assert statements == ["report_device_job"]


def test_a_report_on_a_job_the_device_does_not_have_is_404_from_one_statement(
        client, pi, statements):
    device, _ = pi
    missing = report(client, device, uuid.uuid4(), status="SUCCEEDED")
    assert missing.status_code == 404
    assert statements == ["report_device_job"]


def test_another_devices_token_on_a_report_is_403_before_its_body_is_read(
        client, pi, statements):
    device, job_id = pi
    [other] = register_fleet(1, prefix="other")
    statements.clear()
    refused = report(client, device, job_id, headers=other.headers, status="NOT-A-STATUS")
    assert refused.status_code == 403
    assert refused.get_json()["message"] == "A device token is valid only for its own device"
    assert statements == ["device_token_verdict"]


@pytest.mark.parametrize(("token", "code"), [("nope", 401), ("other", 403), ("viewer", 403)])
def test_a_refused_poll_is_answered_from_its_one_statement(client, pi, viewer_headers,
                                                           statements, token, code):
    device, _ = pi
    [other] = register_fleet(1, prefix="other")
    headers = {"nope": {"Authorization": "Bearer nope"}, "other": other.headers,
               "viewer": viewer_headers}[token]
    statements.clear()
    refused = client.get(next_url(device), headers=headers)
    assert refused.status_code == code
    assert statements == ["poll_device_job"]


def test_a_viewer_token_on_a_report_is_403_from_one_statement(client, pi, viewer_headers,
                                                               statements):
    device, job_id = pi
    statements.clear()
    refused = report(client, device, job_id, headers=viewer_headers, status="SUCCEEDED")
    assert refused.status_code == 403
    assert refused.get_json()["message"] == "A viewer token may not call this endpoint"
    assert statements == ["device_token_verdict"]
