"""Test data for the device side of jobs: a fleet, a fanned-out job, rows put in a status.

Rows are written with plain SQL so tests of polling, reports, rollup, cancel and retry can
set up any state directly, independently of the execute endpoint and the fan-out worker.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass

from dispatcher import db
from dispatcher.config import Settings
from dispatcher.fleet.devices import register_device
from dispatcher.jobs import fanout, progress
from dispatcher.outcome import Decided, Outcome, T
from dispatcher.policies import stages
from dispatcher.poll import next_job as poll
from dispatcher.sender import carry_out, deliver

# Device changes made with these settings nudge no one (no MQTT URL): for tests whose devices
# have no agent listening.
QUIET_SETTINGS = Settings()

JOB_DOCUMENT = {
    "version": "1.0",
    "includeStdOut": True,
    "steps": [{"name": "Check disk space", "type": "runCommand", "input": {"command": "df,-h"}}],
}


@dataclass(frozen=True)
class Device:
    uuid: uuid.UUID
    name: str
    token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


def quietly(decided: Decided[T]) -> T:
    """Carry out what a domain function decided, nudging no one; answer its answer."""
    return deliver(decided, QUIET_SETTINGS)


def register_fleet(n: int, prefix: str = "pi", device_type: str = "raspberry-pi") -> list[Device]:
    fleet = []
    for i in range(n):
        device, token = deliver(register_device(f"{prefix}-{i:03d}", device_type, {"rack": "r1"}),
                                QUIET_SETTINGS)
        fleet.append(Device(device["uuid"], device["device_name"], token))
    return fleet


def insert_job(
    devices: list[Device], *, job_name: str = "Custom diagnostic", fanout_done: bool = True,
    status: str = "QUEUED", document: dict | None = None,
) -> uuid.UUID:
    """A job whose fan-out has made one QUEUED row per device (or not yet marked DONE)."""
    job_id = uuid.uuid4()
    with db.pool().connection() as conn, conn.transaction():
        conn.execute(
            "INSERT INTO job_executions (job_id, job_name, job_document, target_type, status,"
            " total_devices, fanout_status) VALUES (%s, %s, %s, 'group', %s, %s, %s)",
            (job_id, job_name, db.jsonb(document or JOB_DOCUMENT), status, len(devices),
             "DONE" if fanout_done else "RUNNING"),
        )
        conn.execute(
            "INSERT INTO device_job_status (job_id, device_uuid)"
            " SELECT %s, unnest(%s::uuid[])",
            (job_id, [d.uuid for d in devices]),
        )
    return job_id


def handler_document(*handlers: str, final: str | None = None) -> dict:
    """A job document whose steps run ``handlers`` (and ``final`` as its finalStep)."""
    document: dict = {"version": "1.0", "steps": [
        {"name": name, "type": "runHandler", "input": {"handler": name}} for name in handlers]}
    if final is not None:
        document["finalStep"] = {"name": final, "type": "runHandler", "input": {"handler": final}}
    return document


def set_row_status(job_id: uuid.UUID, device: Device, status: str) -> None:
    """Put a device's latest row straight into ``status`` (as if it had got there)."""
    with db.pool().connection() as conn:
        conn.execute(
            "UPDATE device_job_status SET status = %s WHERE job_id = %s AND device_uuid = %s"
            " AND is_latest",
            (status, job_id, device.uuid),
        )


def mark_fanout_done(job_id: uuid.UUID) -> None:
    with db.pool().connection() as conn:
        conn.execute("UPDATE job_executions SET fanout_status = 'DONE' WHERE job_id = %s",
                     (job_id,))


def job_row(job_id: uuid.UUID) -> dict:
    with db.pool().connection() as conn:
        return conn.execute("SELECT * FROM job_executions WHERE job_id = %s", (job_id,)).fetchone()


def events(job_id: uuid.UUID, action: str | None = None) -> list[dict]:
    with db.pool().connection() as conn:
        rows = conn.execute(
            "SELECT actor, action, target_type, target_id, device_uuid, details FROM job_events"
            " WHERE job_id = %s ORDER BY id",
            (job_id,),
        ).fetchall()
    return [row for row in rows if action is None or row["action"] == action]


def status_url(device: Device, job_id: uuid.UUID) -> str:
    return f"/api/v1/devices/{device.uuid}/jobs/{job_id}/status"


def next_url(device: Device) -> str:
    return f"/api/v1/devices/{device.uuid}/jobs/next"


def live_counters(job_id: uuid.UUID) -> dict[str, int]:
    """A job's live ``*_devices`` counters, as the API shows them."""
    return progress.counters_from_status_counts(progress.status_counts(job_id))


def next_job(device_uuid: uuid.UUID) -> dict | None:
    """What the device's next poll would hand out (no token check, never from memory)."""
    polled = poll.poll(device_uuid, None, fresh=True)
    return polled._asdict() if polled is not None and polled.job_id is not None else None


def target_events(target_type: str, target_id: object) -> list[dict]:
    """The audit trail of one thing (a device, a template, a handler, a job), oldest first."""
    with db.pool().connection() as conn:
        return conn.execute(
            "SELECT id, occurred_at, actor, action, target_type, target_id, job_id, device_uuid,"
            " details FROM job_events WHERE target_type = %s AND target_id = %s ORDER BY id",
            (target_type, str(target_id)),
        ).fetchall()


def bulk_register_devices(
    count: int, device_type: str = "generic", attributes: dict | None = None,
    name_prefix: str = "device",
) -> int:
    """Register ``count`` devices named ``<name_prefix>-1…`` in one statement, each with a
    random token nobody holds (for tests and benchmarks that need a fleet, not its agents)."""
    with db.pool().connection() as conn:
        return conn.execute(
            "INSERT INTO devices (uuid, device_name, device_type, attributes, token_hash)"
            " SELECT gen_random_uuid(), %s || '-' || i, %s, %s,"
            " sha256(uuid_send(gen_random_uuid())) FROM generate_series(1, %s) AS i",
            (name_prefix, device_type, db.jsonb(attributes or {}), count),
        ).rowcount


def fan_out(job_id: uuid.UUID, settings: Settings) -> int:
    """Fan a job out here, as the worker's task does: carry out each chunk's outcome; answer how
    many rows this run inserted."""
    return carried_out(fanout.fan_out_job(job_id, settings.fanout_chunk_size), settings)


def release(job_id: uuid.UUID, stage: int, settings: Settings) -> int:
    """Release a stage's rows here, as the worker's task does; answer how many it released."""
    return carried_out(stages.release_stage_rows(job_id, stage, settings.fanout_chunk_size),
                       settings)


def carried_out(outcomes: Iterable[Outcome], settings: Settings) -> int:
    moved = 0
    for outcome in outcomes:
        carry_out(outcome, settings)
        moved += outcome.moved_rows
    return moved
