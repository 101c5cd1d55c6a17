"""Enrollment: tokens an admin makes, devices that trade them for an identity, pending
enrollments an operator accepts or rejects; each refusal says why and is rate limited."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import psycopg

from api.app import create_app
from dispatcher import db
from dispatcher.fleet import tokens

TOKENS = "/api/v1/enrollment-tokens"
ENROLL = "/api/v1/devices/enroll"
PENDING = "/api/v1/devices/pending"
MACHINE = "a" * 64


def make_token(client, headers, **body) -> dict:
    body.setdefault("name", "kitchen batch")
    answer = client.post(TOKENS, json=body, headers=headers)
    assert answer.status_code == 201, answer.get_json()
    return answer.get_json()


def enroll(client, token: str, hardware_id: str = MACHINE, name: str = "pi-kitchen",
           expect: int = 201) -> dict:
    answer = client.post(ENROLL, json={"enrollment_token": token, "hardware_id": hardware_id,
                                       "device_name": name})
    assert answer.status_code == expect, answer.get_json()
    return answer.get_json()


def polls(client, device: dict) -> int:
    return client.get(f"/api/v1/devices/{device['uuid']}/jobs/next",
                      headers={"Authorization": f"Bearer {device['device_token']}"}).status_code


def test_a_device_enrolls_with_the_tokens_type_and_attributes_and_polls(client, admin_headers):
    made = make_token(client, admin_headers, device_type="raspberry-pi",
                      attributes={"site": "kitchen"}, max_uses=10)
    assert made["uses"] == 0 and made["enrollment_token"]
    device = enroll(client, made["enrollment_token"])
    assert device["status"] == "accepted"
    assert (device["device_name"], device["device_type"], device["attributes"]) == (
        "pi-kitchen", "raspberry-pi", {"site": "kitchen"})
    assert polls(client, device) == 200
    listed = client.get(TOKENS, headers=admin_headers).get_json()
    assert [(t["name"], t["uses"]) for t in listed["enrollment_tokens"]] == [("kitchen batch", 1)]
    assert "enrollment_token" not in listed["enrollment_tokens"][0]


def test_the_same_hardware_enrolling_again_gets_its_device_back_with_a_new_token(
        client, admin_headers):
    made = make_token(client, admin_headers)
    first = enroll(client, made["enrollment_token"])
    again = enroll(client, made["enrollment_token"], name="renamed")
    assert again["uuid"] == first["uuid"] and again["device_name"] == "pi-kitchen"
    assert again["device_token"] != first["device_token"]
    assert polls(client, again) == 200
    assert polls(client, first) == 401
    other = enroll(client, made["enrollment_token"], hardware_id="b" * 64)
    assert other["uuid"] != first["uuid"]
    assert devices_registered() == 2


def test_used_up_expired_revoked_and_unknown_tokens_are_refused_with_the_reason(
        client, admin_headers):
    once = make_token(client, admin_headers, max_uses=1)
    enroll(client, once["enrollment_token"])
    refused = enroll(client, once["enrollment_token"], hardware_id="c" * 64, expect=401)
    assert refused["message"] == "Enrollment token used up (all 1 uses spent)"

    past = (datetime.now(UTC) - timedelta(minutes=1)).isoformat()
    expired = make_token(client, admin_headers, expires_at=past)
    assert enroll(client, expired["enrollment_token"], expect=401)["message"] == (
        "Enrollment token expired")

    revoked = make_token(client, admin_headers)
    answer = client.post(f"{TOKENS}/{revoked['id']}/revoke", headers=admin_headers)
    assert answer.status_code == 200 and answer.get_json()["revoked_at"]
    assert enroll(client, revoked["enrollment_token"], expect=401)["message"] == (
        "Enrollment token revoked")

    assert enroll(client, "guess", expect=401)["message"] == "Unknown enrollment token"
    assert devices_registered() == 1


def test_enrollment_tokens_are_admin_only(client, viewer_headers):
    assert client.post(TOKENS, json={"name": "x"}, headers=viewer_headers).status_code == 403
    assert client.post(TOKENS, json={"name": "x"}).status_code == 401
    assert client.get(TOKENS, headers=viewer_headers).status_code == 200


def test_bad_enrollment_bodies_are_400_naming_the_field(client, admin_headers):
    answer = client.post(TOKENS, json={"name": "", "max_uses": 0}, headers=admin_headers)
    assert answer.status_code == 400
    assert set(answer.get_json()["errors"]) == {"name", "max_uses"}
    answer = client.post(ENROLL, json={"enrollment_token": "t", "hardware_id": "short"})
    assert answer.status_code == 400
    assert set(answer.get_json()["errors"]) == {"hardware_id", "device_name"}


def test_a_pending_device_gets_jobs_only_once_accepted(client, admin_headers):
    made = make_token(client, admin_headers, requires_acceptance=True)
    pending = enroll(client, made["enrollment_token"], expect=202)
    assert pending["status"] == "pending"
    assert polls(client, pending) == 401
    again = enroll(client, made["enrollment_token"], expect=202)
    assert again["uuid"] == pending["uuid"]
    listed = client.get(PENDING, headers=admin_headers).get_json()
    assert [(p["uuid"], p["enrollment_token_name"]) for p in listed["pending_enrollments"]] == [
        (pending["uuid"], "kitchen batch")]
    accepted = client.post(f"{PENDING}/{pending['uuid']}/accept", headers=admin_headers)
    assert accepted.status_code == 201 and accepted.get_json()["uuid"] == pending["uuid"]
    assert polls(client, again) == 200
    assert client.get(PENDING, headers=admin_headers).get_json()["total"] == 0
    assert client.post(f"{PENDING}/{pending['uuid']}/accept",
                       headers=admin_headers).status_code == 404


def test_a_rejected_device_never_gets_in(client, admin_headers):
    made = make_token(client, admin_headers, requires_acceptance=True)
    pending = enroll(client, made["enrollment_token"], expect=202)
    rejected = client.post(f"{PENDING}/{pending['uuid']}/reject", headers=admin_headers)
    assert rejected.status_code == 200
    assert polls(client, pending) == 401
    assert tokens.authenticate(pending["device_token"]) is None
    assert client.get(f"/api/v1/devices/{pending['uuid']}", headers=admin_headers
                      ).status_code == 404


def test_guessing_enrollment_tokens_is_rate_limited_like_logins(settings, admin_headers):
    app = create_app(replace(settings, rate_limit_auth_failures_per_min=3))
    client = app.test_client()
    answers = [client.post(ENROLL, json={"enrollment_token": f"guess{n}",
                                         "hardware_id": MACHINE, "device_name": "pi"}
                           ).status_code for n in range(5)]
    assert answers == [401, 401, 401, 429, 429]


def test_a_tokens_attributes_follow_the_rules_of_a_devices(client, admin_headers):
    for attributes, message in (({"device_type": "pi"}, "device_type is a field of its own"),
                                ({"site": None}, "must not be null: site")):
        answer = client.post(TOKENS, json={"name": "x", "attributes": attributes},
                             headers=admin_headers)
        assert answer.status_code == 400
        assert message in str(answer.get_json()["errors"]["attributes"])


def devices_registered() -> int:
    with psycopg.connect(db.database_url()) as conn:
        return conn.execute("SELECT count(*) FROM devices").fetchone()[0]
