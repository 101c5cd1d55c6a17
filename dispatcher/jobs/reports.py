"""The device side of a job: a device's history and its status reports.

A device's report is first tried as one statement (``apply_report``, query
``report_device_job``): lock the row if the token, the state table and the version allow, move
it, write the audit events and start the job, in one round trip and one short transaction.
When that moves nothing, the checked path (``report_status``) locks the device's latest row and
checks the state table (``dispatcher.jobs.states``) to say what is wrong, accepts a repeated result,
or (the row having moved meanwhile) runs the same statement on the row it holds. The server's
own transitions (a cancel) lock and check the same way (``lock_for_transition``) before their
one statement (``dispatcher.jobs.control``). Either way the UPDATE that moves the job's shared
status counters (the triggers behind ``job_status_counts``) comes at the end of its
transaction, so their row locks are held only for the commit that follows: thousands of
devices of one job reporting at once then queue on those rows for the shortest time possible.
Counting is left to the triggers; the job's own status follows through
``dispatcher.jobs.completion``.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from dispatcher import db
from dispatcher.errors import Conflict, InvalidInput, NotFound
from dispatcher.jobs import completion, states
from dispatcher.jobs.outcome import Outcome
from dispatcher.jobs.states import Actor
from dispatcher.poll import sightings
from schemas.job_document import document_size_bytes
from schemas.vocabulary import REJECTED, TERMINAL

OUTPUT_FIELDS = ("stdout", "stderr")
REPORT_FIELDS = ("exit_code", "reason", "executed_steps", "failed_step")


@dataclass(frozen=True)
class LockedRow:
    """A device's latest row for a job, locked, with the transition asked of it."""

    id: int
    status: str
    version_number: int
    job_status: str
    target: str

    @property
    def is_repeat(self) -> bool:
        """The terminal status the row already has: nothing to do, and not an error."""
        return self.status == self.target and self.target in TERMINAL


def list_device_jobs(
    device_uuid: uuid.UUID, status: str | None, limit: int, offset: int
) -> dict:
    """A page of a device's history, newest first (every execution number, with job names)."""
    page = db.page(
        "list_device_jobs", "jobs", "count_device_jobs", limit=limit, offset=offset,
        device_uuid=device_uuid, status=status,
    )
    if not page["jobs"] and not db.row("device_exists", device_uuid=device_uuid)["found"]:
        raise NotFound(f"Device {device_uuid} not found")
    return page


def get_device_job(job_id: uuid.UUID, device_uuid: uuid.UUID) -> dict:
    """The latest row of a device for a job."""
    row = db.one("get_device_job", job_id=job_id, device_uuid=device_uuid)
    if row is None:
        raise NotFound(f"Device {device_uuid} has no job {job_id}")
    return row


def _report_fields(report: dict[str, Any], output_cap_bytes: int) -> dict[str, Any]:
    """The row columns a report sets (None: keep the stored value), outputs cut to the cap.
    ``status_details`` cannot be cut: over the cap it is refused."""
    fields: dict[str, Any] = {name: report.get(name) for name in REPORT_FIELDS}
    for name in OUTPUT_FIELDS:
        fields[name], fields[f"{name}_truncated"] = keep_tail(report.get(name), output_cap_bytes)
    details = report.get("status_details")
    if details is not None and document_size_bytes(details) > output_cap_bytes:
        raise InvalidInput(f"status_details is larger than {output_cap_bytes} bytes",
                           {"status_details": [f"At most {output_cap_bytes} bytes of JSON."]})
    fields["status_details"] = db.jsonb(details)
    return fields


def keep_tail(text: str | None, cap_bytes: int) -> tuple[str | None, bool | None]:
    """The last ``cap_bytes`` bytes of ``text`` (UTF-8, never a split character), and whether
    anything was cut. (None, None) when there is no text: the stored value is kept."""
    if text is None:
        return None, None
    raw = text.encode()
    if len(raw) <= cap_bytes:
        return text, False
    return raw[len(raw) - cap_bytes:].decode(errors="ignore"), True


def apply_report(
    device_uuid: uuid.UUID, job_id: uuid.UUID, report: dict[str, Any], output_cap_bytes: int,
    actor: str, token_hash: bytes | None,
) -> dict | None:
    """Apply a device's status report in one statement and return the row as stored; None when
    it could not be applied as it stands (not this device's token, no such job, a change the
    state table refuses, another version, the terminal status repeated). ``report_status``
    then tells which, and does what a repeat asks. ``token_hash`` None skips the token check.

    The common case, a device moving its own row on, costs one round trip; see the
    ``report_device_job`` query for what that statement does.
    """
    stored = db.one("report_device_job", **_report_params(
        device_uuid, job_id, report, output_cap_bytes, actor, token_hash))
    if stored is None:
        return None
    _reported(device_uuid, job_id, report["status"])
    return stored


def report_status(
    device_uuid: uuid.UUID, job_id: uuid.UUID, report: dict[str, Any], output_cap_bytes: int,
    actor: str,
) -> dict:
    """Apply a device's status report and return the row as stored, checking each step.

    Raises NotFound when the device has no such job, Conflict (with ``current_status`` and
    ``version_number``) when the state table refuses the change or ``expected_version`` does
    not match. Repeating the terminal status the row already has changes nothing and succeeds.
    The change itself is the same statement as ``apply_report``'s, run on the row locked here.
    """
    target = report["status"]
    with db.transaction() as c:
        row = lock_for_transition(
            c, job_id, device_uuid, target, Actor.DEVICE,
            expected_version=report.get("expected_version"),
        )
        if row.is_repeat:
            stored = None
        else:
            stored = c.one("report_device_job", **_report_params(
                device_uuid, job_id, report, output_cap_bytes, actor, None))
            # The row is locked and was checked against the same table: it cannot be missed.
            assert stored is not None, f"device job row {row.id} did not move to {target}"
    if stored is None:
        sightings.of_this_process.note(device_uuid)
        return get_device_job(job_id, device_uuid)
    _reported(device_uuid, job_id, target)
    return stored


def _report_params(
    device_uuid: uuid.UUID, job_id: uuid.UUID, report: dict[str, Any], output_cap_bytes: int,
    actor: str, token_hash: bytes | None,
) -> dict[str, Any]:
    target = report["status"]
    return {
        "job_id": job_id, "device_uuid": device_uuid, "token_hash": token_hash,
        "status": target, "sources": states.sources_for(target, Actor.DEVICE),
        "starts": target != REJECTED, "terminal": target in TERMINAL,
        "expected_version": report.get("expected_version"),
        "step_timeout_minutes": report.get("step_timeout_minutes"), "actor": actor,
        **_report_fields(report, output_cap_bytes),
    }


def _reported(device_uuid: uuid.UUID, job_id: uuid.UUID, target: str) -> None:
    """After a report has committed: the device was heard from, and its job may be done."""
    sightings.of_this_process.note(device_uuid)
    if target in TERMINAL:
        completion.complete_if_done(job_id)


def after_report(row: dict) -> Outcome:
    """What a committed report leaves to do: a staged device's terminal report may decide its
    stage's gate (``dispatcher.policies.gates``)."""
    outcome = Outcome()
    if row.get("stage") is not None and row["status"] in TERMINAL:
        outcome.gate_checks.add(row["job_id"])
    return outcome


def lock_for_transition(
    conn: db.Connector, job_id: uuid.UUID, device_uuid: uuid.UUID, target: str, actor: Actor,
    *, force: bool = False, expected_version: int | None = None,
) -> LockedRow:
    """Lock a device's latest row for a job and check that ``actor`` may move it to ``target``.

    Raises NotFound when the device has no such job, Conflict (with ``current_status`` and
    ``version_number``) when the state table refuses the change or ``expected_version`` does
    not match. A repeat of the terminal status the row has is allowed (``is_repeat``).
    """
    found = conn.one("lock_device_job", job_id=job_id, device_uuid=device_uuid)
    if found is None:
        raise NotFound(f"Device {device_uuid} has no job {job_id}")
    row = LockedRow(
        found["id"], found["status"], found["version_number"], found["job_status"], target
    )
    if row.is_repeat:
        return row
    if not states.is_allowed(row.status, target, actor, force):
        if actor is Actor.SERVER and states.is_allowed(row.status, target, actor, force=True):
            raise Conflict(f"The device's job is {row.status}; use force to {target} it",
                           current_status=row.status, version_number=row.version_number)
        raise Conflict(f"Cannot change status from {row.status} to {target}",
                       current_status=row.status, version_number=row.version_number)
    if expected_version is not None and expected_version != row.version_number:
        raise Conflict(
            f"Version mismatch: expected {expected_version}, current is {row.version_number}",
            current_status=row.status, version_number=row.version_number,
        )
    return row
