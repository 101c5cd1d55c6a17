"""What to do with a run that an agent restart cut short.

Never run a step twice by accident. A run resumes only where no step was cut: after a reboot
step that really rebooted the system (the kernel's boot id changed), or when every step had
already finished; or at a cut artifact download, which goes on from the bytes it had
(``agent.downloads``: running it again is what it is made for). Anything else is reported
FAILED with a reason that says the agent restarted.

A reboot step found on the same boot may still be on its way down (the agent was stopped by
the shutdown it started): the runner waits out what is left of ``reboot_wait_s`` from the
step's start (``reboot_wait_left``) before reporting that the system did not reboot.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from agent.engine import FAILED, JobResult, Progress
from agent.process import kill_process_group

log = logging.getLogger(__name__)

AGENT_RESTARTED = "agent restarted while the job was running"


def stop_leftover_step(record: Mapping, boot_id: str | None) -> None:
    """Kill the cut step's process group if it outlived the agent (no systemd to clean up)."""
    running = record.get("running") or {}
    if "pid" not in running or boot_id is None or running.get("boot_id") != boot_id:
        return
    if kill_process_group(int(running["pid"]), running.get("pid_start")):
        log.warning("killed the step the previous agent left running pid=%s step=%r",
                    running["pid"], running.get("name"))


def reboot_wait_left(
    record: Mapping, boot_id: str | None, reboot_wait_s: float, now: float
) -> float:
    """Seconds left for a reboot step started on this same boot to take the system down."""
    running = record.get("running") or {}
    if not running.get("reboot") or boot_id is None or running.get("boot_id") != boot_id:
        return 0.0
    started_at = running.get("started_at")
    if not isinstance(started_at, (int, float)):
        return 0.0
    # Never more than the whole wait: a clock set back since the step began (NTP fixing a
    # clock that was far ahead) must not hold the agent for as long as it moved.
    return min(reboot_wait_s, max(0.0, float(started_at) + reboot_wait_s - now))


def recovery_plan(
    record: Mapping, boot_id: str | None, total_steps: int, reboot_wait_s: float = 0.0,
) -> tuple[Progress | None, JobResult | None]:
    """(progress to resume from, None) or (None, the result to report)."""
    progress = Progress.from_dict(record.get("progress") or {})
    running = record.get("running")
    if running is None:
        if progress.next_index >= total_steps:
            return progress, None
        reason = f"{AGENT_RESTARTED} (between steps; {progress.executed_steps} done)"
    elif running.get("resumable") is True:
        return progress, None
    elif running.get("reboot"):
        before = running.get("boot_id")
        if before is None or boot_id is None or before != boot_id:
            progress.steps.append({"name": running["name"], "exit_code": 0,
                                   "outcome": "succeeded (system rebooted)"})
            progress.executed_steps += 1
            progress.next_index += 1
            return progress, None
        reason = (f"{AGENT_RESTARTED}: reboot step {running['name']!r} was started "
                  f"but the system did not reboot within {reboot_wait_s:g} s "
                  "(the boot id did not change)")
    else:
        reason = f"{AGENT_RESTARTED} (step {running['name']!r} was interrupted)"
    failed_step = running["name"] if running else None
    details = {"total_steps": total_steps, "steps": progress.steps, "agent_restarted": True}
    return None, JobResult(FAILED, progress.executed_steps, failed_step=failed_step,
                           reason=reason, status_details=details)
