"""Final reports waiting to be accepted by the server, one durable file per job execution.

A final report is written here before it is sent and removed only once the server has it, so
neither a server outage nor a power cut loses a result.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from agent.storage import atomic_write_json, ensure_private_dir, read_json, remove

# How many settled executions to remember, so a job handed out again is never run twice.
SETTLED_KEPT = 500


@dataclass(frozen=True)
class OutboxEntry:
    job_id: str
    execution_number: int
    body: dict
    written_at: float


class Outbox:
    def __init__(self, directory: Path) -> None:
        self.directory = ensure_private_dir(directory)
        # Outside the directory, so that pending() never mistakes it for a report.
        self._settled_path = directory.with_name(directory.name + "-settled.json")

    def _path(self, job_id: str, execution_number: int) -> Path:
        return self.directory / f"{job_id}.{execution_number}.json"

    def put(self, job_id: str, execution_number: int, body: dict) -> None:
        atomic_write_json(self._path(job_id, execution_number), {
            "job_id": job_id, "execution_number": execution_number, "body": body,
            "written_at": time.time(),
        })

    def has(self, job_id: str, execution_number: int) -> bool:
        return self._path(job_id, execution_number).exists()

    def pending(self) -> list[OutboxEntry]:
        """Every waiting report, oldest first."""
        entries = []
        for path in self.directory.glob("*.json"):
            data = read_json(path)
            if data is None:
                continue
            try:
                entries.append(OutboxEntry(
                    str(data["job_id"]), int(data["execution_number"]), dict(data["body"]),
                    float(data.get("written_at", 0)),
                ))
            except (KeyError, TypeError, ValueError):
                path.rename(path.with_name(path.name + ".corrupt"))
        return sorted(entries, key=lambda entry: entry.written_at)

    def remove(self, job_id: str, execution_number: int) -> None:
        """The server has the report (or refused it for good): remember the job as settled."""
        settled = self._settled()
        key = f"{job_id}.{execution_number}"
        if key not in settled:
            atomic_write_json(self._settled_path, {"jobs": [*settled, key][-SETTLED_KEPT:]})
        remove(self._path(job_id, execution_number))

    def settled(self, job_id: str, execution_number: int) -> bool:
        """Whether this execution's result was already handed to the server."""
        return f"{job_id}.{execution_number}" in self._settled()

    def _settled(self) -> list[str]:
        data = read_json(self._settled_path) or {}
        jobs = data.get("jobs")
        return [str(key) for key in jobs] if isinstance(jobs, list) else []
