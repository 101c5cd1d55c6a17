"""Test data for the device side of jobs: a fleet, a fanned-out job, rows put in a status.

Rows are written with plain SQL so tests of polling, reports, rollup, cancel and retry can
set up any state directly, independently of the execute endpoint and the fan-out worker.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from dispatcher import db
from dispatcher.devices import register_device

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


def register_fleet(n: int, prefix: str = "pi", device_type: str = "raspberry-pi") -> list[Device]:
    fleet = []
    for i in range(n):
        device, token = register_device(f"{prefix}-{i:03d}", device_type, {"rack": "r1"})
        fleet.append(Device(device["uuid"], device["device_name"], token))
    return fleet


def insert_job(
    devices: list[Device], *, job_name: str = "Custom diagnostic", fanout_done: bool = True,
    status: str = "QUEUED",
) -> uuid.UUID:
    """A job whose fan-out has made one QUEUED row per device (or not yet marked DONE)."""
    job_id = uuid.uuid4()
    with db.pool().connection() as conn, conn.transaction():
        conn.execute(
            "INSERT INTO job_executions (job_id, job_name, job_document, target_type, status,"
            " total_devices, fanout_status) VALUES (%s, %s, %s, 'group', %s, %s, %s)",
            (job_id, job_name, db.jsonb(JOB_DOCUMENT), status, len(devices),
             "DONE" if fanout_done else "RUNNING"),
        )
        conn.execute(
            "INSERT INTO device_job_status (job_id, device_uuid)"
            " SELECT %s, unnest(%s::uuid[])",
            (job_id, [d.uuid for d in devices]),
        )
    return job_id


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
