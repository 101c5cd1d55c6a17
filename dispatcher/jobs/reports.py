"""The device side of a job: a device's history and its status reports.

A device's report is one statement (``apply_report``, query ``report_device_job``), applied
together with the reports this process receives at the same time in one statement and one
commit (``dispatcher.jobs.report_batches``, query ``report_device_jobs``, the same for many
rows), each answered from its own row of the batch: lock the
device's latest row for the job when the token is the device's, move it if the state table and
the version allow, write the audit events and start the job, in one round trip and one short
transaction. The same statement answers its verdict (the token ok or what it is instead, the
row's current status and version, read under the lock), so a refused report is answered from
it too: 401/403, 404, 409 with the current status, or 200 for a repeated result. Only a row
that stopped being the device's latest while the statement waited for its lock takes the
checked path (``report_status``): lock the latest row, check the state table
(``dispatcher.jobs.states``) and run the same statement on the row it holds. The server's own
transitions (a cancel) lock and check the same way (``lock_for_transition``) before their one
statement (``dispatcher.jobs.control``). Either way the UPDATE that moves the job's shared
status counters (the triggers behind ``job_status_counts``) comes at the end of its
transaction, so their row locks are held only for the commit that follows: thousands of
devices of one job reporting at once then queue on those rows for the shortest time possible.
Counting is left to the triggers; the job's own status follows through
``dispatcher.jobs.completion``.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

from dispatcher import db
from dispatcher.errors import Conflict, InvalidInput, NotFound
from dispatcher.fleet.tokens import TokenVerdict
from dispatcher.jobs import report_batches, states
from dispatcher.jobs.states import Actor
from dispatcher.outcome import Decided, Outcome
from dispatcher.poll import idle, sightings
from schemas.job_document import document_size_bytes
from schemas.vocabulary import ACTIVE_JOB, REJECTED, TERMINAL

OUTPUT_FIELDS = ("stdout", "stderr")
REPORT_FIELDS = ("exit_code", "reason", "executed_steps", "failed_step")


@dataclass(frozen=True)
class LockedRow:
    """A device's latest row for a job, locked, checked for the transition asked of it.
    ``is_repeat``: the terminal status the row already has: nothing to do, and not an error."""

    id: int
    status: str
    version_number: int
    job_status: str
    is_repeat: bool


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


@dataclass(frozen=True)
class Reported:
    """A status report as its one statement answered it: the verdict on the device's token
    (a caller whose token is not ok is refused before anything else), and the device's row as
    stored, None only for a caller refused."""

    verdict: TokenVerdict
    stored: dict | None
    # What the report's commit leaves to do: its job may be complete.
    outcome: Outcome = field(default_factory=Outcome)


VERDICT_COLUMNS = ("token_ok", "token_kind", "moved", "row_changed", "job_status")


def apply_report(
    device_uuid: uuid.UUID, job_id: uuid.UUID, report: dict[str, Any], output_cap_bytes: int,
    actor: str, token_hash: bytes | None,
) -> Reported:
    """Apply a device's status report in one statement, which answers every outcome: the
    token's verdict; the row as stored when it moved, or when the report repeats the terminal
    status it has; else NotFound when the device has no such job, Conflict (with
    ``current_status`` and ``version_number``) when the state table refuses the change or
    ``expected_version`` does not match. ``token_hash`` None skips the token check (then a
    device that does not exist is NotFound).

    Only a row that changed under the statement's lock (a retry made a new latest row meanwhile)
    takes a second look, on the checked path (``report_status``). See the ``report_device_job``
    query for what the statement does.
    """
    known = idle.current()
    position = known.position
    found, batch_rows = report_batches.of_this_process.apply(_report_params(
        device_uuid, job_id, report, output_cap_bytes, actor, token_hash))
    token_ok, token_kind, moved, row_changed, job_status = (
        found.pop(name) for name in VERDICT_COLUMNS)
    verdict = TokenVerdict(token_ok, token_kind)
    if not token_ok:
        if token_hash is None:
            raise NotFound(f"Device {device_uuid} has no job {job_id}")
        return Reported(verdict, None)
    if token_hash is not None:
        known.learn_token(device_uuid, token_hash, position)
    target = report["status"]
    if moved:
        # One report of each batch carries out what the whole batch's commit leaves to do.
        sightings.of_this_process.note(device_uuid)
        return Reported(verdict, found, _batch_outcome(batch_rows or []))
    if row_changed:
        checked = report_status(device_uuid, job_id, report, output_cap_bytes, actor)
        return Reported(verdict, checked.answer, checked.outcome)
    if found["job_id"] is None:
        raise NotFound(f"Device {device_uuid} has no job {job_id}")
    is_repeat = check_transition(found["status"], found["version_number"], target,
                                 Actor.DEVICE, expected_version=report.get("expected_version"))
    # The statement moves every change the table allows on the row it locked.
    assert is_repeat, f"device {device_uuid} job {job_id} did not move to {target}"
    # A repeated result is a retry, perhaps of a report that committed in a process killed
    # before it answered, and before it checked the job's completion: while the job is still
    # active, check it again.
    sightings.of_this_process.note(device_uuid)
    if job_status in ACTIVE_JOB:
        return Reported(verdict, found, _row_outcome(found))
    return Reported(verdict, found)


def report_status(
    device_uuid: uuid.UUID, job_id: uuid.UUID, report: dict[str, Any], output_cap_bytes: int,
    actor: str,
) -> Decided[dict]:
    """Apply a device's status report and answer the row as stored, checking each step.

    Raises NotFound when the device has no such job, Conflict (with ``current_status`` and
    ``version_number``) when the state table refuses the change or ``expected_version`` does
    not match. Repeating the terminal status the row already has changes nothing and succeeds.
    The change itself is ``apply_report``'s statement, run on the row locked here.
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
            found = c.one("report_device_job", **_report_params(
                device_uuid, job_id, report, output_cap_bytes, actor, None))
            # The row is locked and was checked against the same table: it cannot be missed.
            assert found is not None and found["moved"], \
                f"device job row {row.id} did not move to {target}"
            stored = {name: value for name, value in found.items()
                      if name not in VERDICT_COLUMNS}
    if stored is None:
        stored = get_device_job(job_id, device_uuid)
    return Decided(stored, _reported(device_uuid, stored))


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


def _batch_outcome(rows: list[dict]) -> Outcome:
    """What the commit of a batch of reports leaves to do: the outcome of each row it moved."""
    outcome = Outcome()
    for row in rows:
        if row["moved"]:
            outcome.merge(_row_outcome(row))
    return outcome


def _row_outcome(row: dict) -> Outcome:
    """A terminal report may have finished its job, and a staged device's may decide its
    stage's gate (``dispatcher.policies.gates``)."""
    outcome = Outcome()
    if row["status"] in TERMINAL:
        outcome.may_have_completed.add(row["job_id"])
        if row.get("stage") is not None:
            outcome.gate_checks.add(row["job_id"])
    return outcome


def _reported(device_uuid: uuid.UUID, row: dict) -> Outcome:
    """After a report has committed: the device was heard from; a terminal report may have
    finished its job, and a staged device's may decide its stage's gate
    (``dispatcher.policies.gates``)."""
    sightings.of_this_process.note(device_uuid)
    return _row_outcome(row)


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
    is_repeat = check_transition(found["status"], found["version_number"], target, actor,
                                 force=force, expected_version=expected_version)
    return LockedRow(found["id"], found["status"], found["version_number"], found["job_status"],
                     is_repeat)


def check_transition(
    status: str, version_number: int, target: str, actor: Actor, *, force: bool = False,
    expected_version: int | None = None,
) -> bool:
    """Check that ``actor`` may move a row of ``status`` and ``version_number`` to ``target``;
    answer whether it is a repeat of the terminal status the row has (allowed, nothing to do).

    Raises Conflict (with ``current_status`` and ``version_number``) when the state table
    refuses the change or ``expected_version`` does not match.
    """
    if status == target and target in TERMINAL:
        return True
    if not states.is_allowed(status, target, actor, force):
        if actor is Actor.SERVER and states.is_allowed(status, target, actor, force=True):
            raise Conflict(f"The device's job is {status}; use force to {target} it",
                           current_status=status, version_number=version_number)
        raise Conflict(f"Cannot change status from {status} to {target}",
                       current_status=status, version_number=version_number)
    if expected_version is not None and expected_version != version_number:
        raise Conflict(
            f"Version mismatch: expected {expected_version}, current is {version_number}",
            current_status=status, version_number=version_number,
        )
    return False
