"""Enrollment: a device trades an enrollment token for an identity of its own.

An admin makes an enrollment token (name, expiry, number of uses, the device type and
attributes its devices get, whether an operator must accept them). A device enrolling with it
(``POST /api/v1/devices/enroll``) is registered at once, or waits as a *pending* enrollment
until an operator accepts or rejects it. The same hardware (its ``hardware_id``) enrolling
again gets its existing device back with a new token, never a second device.
"""

from __future__ import annotations

import uuid as uuid_mod
from datetime import UTC, datetime

from dispatcher import audit, db
from dispatcher.errors import DispatcherError, NotFound
from dispatcher.fleet import tokens
from dispatcher.outcome import Decided, Outcome
from dispatcher.policies import continuous

ACCEPTED = "accepted"
PENDING = "pending"


class EnrollmentRefused(DispatcherError):
    """The enrollment token cannot buy an identity; the message says why. 401: every refusal
    counts as a failed authentication of the caller's address, as a bad login does."""

    http_status = 401


def create_enrollment_token(
    name: str, expires_at: datetime | None, max_uses: int | None, device_type: str,
    attributes: dict, requires_acceptance: bool, created_by: str,
) -> tuple[str, dict]:
    """Make an enrollment token; answer the plain token (shown once) and its record."""
    token = tokens.new_token()
    with db.transaction() as c:
        record = c.row(
            "insert_enrollment_token", name=name, token_hash=tokens.hash_token(token),
            expires_at=expires_at, max_uses=max_uses, device_type=device_type,
            attributes=db.jsonb(attributes), requires_acceptance=requires_acceptance,
            created_by=created_by,
        )
        audit.record_event(c, created_by, "enrollment_token.created", "enrollment_token",
                           record["id"], details={"name": name})
    return token, record


def list_enrollment_tokens(limit: int, offset: int) -> dict:
    return db.page("list_enrollment_tokens", "enrollment_tokens", "count_enrollment_tokens",
                   limit=limit, offset=offset)


def revoke_enrollment_token(token_id: int, actor: str) -> dict:
    with db.transaction() as c:
        record = c.one("revoke_enrollment_token", id=token_id)
        if record is None:
            raise NotFound(f"Enrollment token {token_id} not found")
        audit.record_event(c, actor, "enrollment_token.revoked", "enrollment_token", token_id)
    return record


def _joins_continuous_jobs(device_uuid: uuid_mod.UUID) -> Outcome:
    """A new device joins the continuous jobs it matches, as a registered one does."""
    return continuous.reconcile_continuous(datetime.now(UTC), device_uuid=device_uuid)


def _refusal(c: db.Connector, token_hash: bytes) -> EnrollmentRefused:
    found = c.one("find_enrollment_token", token_hash=token_hash)
    if found is None:
        return EnrollmentRefused("Unknown enrollment token")
    if found["revoked_at"] is not None:
        return EnrollmentRefused("Enrollment token revoked")
    if found["expired"]:
        return EnrollmentRefused("Enrollment token expired")
    return EnrollmentRefused(f"Enrollment token used up (all {found['max_uses']} uses spent)")


def enroll_device(
    enrollment_token: str, hardware_id: str, device_name: str,
) -> Decided[tuple[str, dict, str]]:
    """Spend one use of ``enrollment_token`` on the device of ``hardware_id``.

    Answers ``(status, device, device_token)``: ``accepted`` with the device (new, or the one
    this hardware enrolled as before, whose old token stops working), or ``pending`` with the
    uuid and token it will have once accepted. Raises EnrollmentRefused with the reason.
    """
    token_hash = tokens.hash_token(enrollment_token)
    device_token = tokens.new_token()
    device_token_hash = tokens.hash_token(device_token)
    with db.transaction() as c:
        grant = c.one("use_enrollment_token", token_hash=token_hash)
        if grant is None:
            raise _refusal(c, token_hash)
        actor = f"enrollment:{grant['name']}"
        known = c.one("lock_device_by_hardware", hardware_id=hardware_id)
        if known is not None:
            device = c.row("set_enrolled_device_token", uuid=known["uuid"],
                           token_hash=device_token_hash)
            audit.record_event(c, actor, "device.reenrolled", "device", device["uuid"],
                               device_uuid=device["uuid"])
            return Decided((ACCEPTED, device, device_token))
        fields = {"uuid": uuid_mod.uuid4(), "hardware_id": hardware_id,
                  "device_name": device_name, "device_type": grant["device_type"],
                  "attributes": db.jsonb(grant["attributes"]), "token_hash": device_token_hash}
        if grant["requires_acceptance"]:
            pending = c.row("upsert_pending_enrollment", enrollment_token_id=grant["id"],
                            **fields)
            audit.record_event(c, actor, "device.enrollment_pending", "device", pending["uuid"],
                               details={"device_name": device_name})
            return Decided((PENDING, pending, device_token))
        device = c.row("insert_enrolled_device", **fields)
        audit.record_event(c, actor, "device.enrolled", "device", device["uuid"],
                           device_uuid=device["uuid"], details={"device_name": device_name})
    return Decided((ACCEPTED, device, device_token), _joins_continuous_jobs(device["uuid"]))


def list_pending_enrollments(limit: int, offset: int) -> dict:
    return db.page("list_pending_enrollments", "pending_enrollments",
                   "count_pending_enrollments", limit=limit, offset=offset)


def accept_enrollment(device_uuid: uuid_mod.UUID, actor: str) -> Decided[dict]:
    """Make a pending enrollment a device, with the uuid and token it was given; from its next
    poll on it gets jobs."""
    with db.transaction() as c:
        pending = c.one("take_pending_enrollment", uuid=device_uuid)
        if pending is None:
            raise NotFound(f"No pending enrollment {device_uuid}")
        device = c.row("insert_enrolled_device", **{
            **pending, "attributes": db.jsonb(pending["attributes"])})
        audit.record_event(c, actor, "device.enrollment_accepted", "device", device_uuid,
                           device_uuid=device_uuid)
    outcome = _joins_continuous_jobs(device_uuid)
    # The MQTT credentials it was told when it enrolled start working now.
    outcome.broker_grants[device_uuid] = pending["token_hash"]
    return Decided(device, outcome)


def reject_enrollment(device_uuid: uuid_mod.UUID, actor: str) -> Decided[dict]:
    """Forget a pending enrollment: its token, and the MQTT credentials it was told, never
    work."""
    with db.transaction() as c:
        pending = c.one("take_pending_enrollment", uuid=device_uuid)
        if pending is None:
            raise NotFound(f"No pending enrollment {device_uuid}")
        audit.record_event(c, actor, "device.enrollment_rejected", "device", device_uuid,
                           details={"device_name": pending["device_name"]})
    return Decided({key: pending[key] for key in ("uuid", "device_name", "device_type",
                                                  "attributes")},
                   Outcome(broker_revocations={device_uuid}))
