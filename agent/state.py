"""The job in progress, recorded on disk before anything runs (reboot and crash safety).

``current-job.json`` holds the job, its document, its progress and the step that is running.
It exists from before the first step until the final report is safely in the outbox, so an
agent that starts and finds it knows a run was cut short, and where.
"""

from __future__ import annotations

import time
from pathlib import Path

from agent.downloads import is_agent_download
from agent.engine import Progress
from agent.process import process_start_ticks
from agent.storage import atomic_write_json, ensure_private_dir, read_json, remove

BOOT_ID_PATH = Path("/proc/sys/kernel/random/boot_id")


def current_boot_id(path: Path = BOOT_ID_PATH) -> str | None:
    """Changes at every boot; None where the kernel does not provide it."""
    try:
        return path.read_text().strip() or None
    except OSError:
        return None


class JobState:
    def __init__(self, state_dir: Path, boot_id_path: Path = BOOT_ID_PATH) -> None:
        self.path = ensure_private_dir(state_dir) / "current-job.json"
        self.boot_id_path = boot_id_path
        self._record: dict | None = None

    def boot_id(self) -> str | None:
        """The boot id now (the ``boot_id_file`` setting says where it is read; tests point it
        at a file of their own to play a reboot)."""
        return current_boot_id(self.boot_id_path)

    def load(self) -> dict | None:
        self._record = read_json(self.path)
        return self._record

    def begin(
        self, job_id: str, execution_number: int, job_name: str, document: object,
        progress: Progress,
    ) -> None:
        self._record = {
            "job_id": job_id, "execution_number": execution_number, "job_name": job_name,
            "document": document, "started_at": time.time(), "boot_id": self.boot_id(),
            "progress": vars(progress), "running": None,
        }
        atomic_write_json(self.path, self._record)

    def step_starting(self, progress: Progress, step: dict, reboot: bool) -> None:
        assert self._record is not None
        self._record["progress"] = vars(progress)
        # A download goes on from where it was after a restart (agent.downloads).
        self._record["running"] = {"name": step["name"], "reboot": reboot,
                                   "resumable": is_agent_download(step),
                                   "boot_id": self.boot_id(), "started_at": time.time()}
        atomic_write_json(self.path, self._record)

    def step_process_started(self, pid: int) -> None:
        """The running step's process (and process group), to stop it if we die first."""
        assert self._record is not None and self._record["running"] is not None
        self._record["running"].update(pid=pid, pid_start=process_start_ticks(pid))
        atomic_write_json(self.path, self._record)

    def step_finished(self, progress: Progress) -> None:
        assert self._record is not None
        self._record["progress"] = vars(progress)
        self._record["running"] = None
        atomic_write_json(self.path, self._record)

    def set_aside(self) -> None:
        self._record = None
        self.path.rename(self.path.with_name(self.path.name + ".corrupt"))

    def clear(self) -> None:
        self._record = None
        remove(self.path)
