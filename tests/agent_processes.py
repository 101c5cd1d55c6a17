"""Real ``jobs-agent`` processes for end-to-end tests and benchmarks.

An agent runs as its own process with its own state directory, as on a device, and is stopped
with the test's other server processes. Its job steps find their device's directory in
``$DEVICE_HOME`` (steps inherit the agent's environment, minus its JOBS_AGENT_* settings).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from processes import ServerProcess, ServerProcesses


def start_agent(
    processes: ServerProcesses,
    server_url: str,
    device: dict,
    home: Path,
    poll_interval_s: float = 1.0,
    mqtt_url: str = "",
    path_prefix: str = "",
    **settings: str,
) -> ServerProcess:
    """Start an agent for ``device`` (as answered by POST /devices) and wait until it runs.

    With ``mqtt_url`` it counts as started once its MQTT subscription is in place.
    ``path_prefix`` goes first on the agent's PATH (fake system commands for its steps).
    ``settings`` are further agent settings, e.g. ``cancel_check_s="1"``.
    """
    home.mkdir(parents=True, exist_ok=True)
    env = {
        **os.environ, "PYTHONUNBUFFERED": "1", "DEVICE_HOME": str(home),
        "JOBS_AGENT_SERVER_URL": server_url,
        "JOBS_AGENT_DEVICE_UUID": str(device["uuid"]),
        "JOBS_AGENT_TOKEN": device["device_token"],
        "JOBS_AGENT_POLL_INTERVAL_S": str(poll_interval_s),
        "JOBS_AGENT_MQTT_URL": mqtt_url,
        "JOBS_AGENT_STATE_DIR": str(home / "state"),
        "JOBS_AGENT_HANDLER_DIR": str(home / "handlers"),
        "JOBS_AGENT_INVENTORY_DIR": str(home / "inventory.d"),
        **{f"JOBS_AGENT_{name.upper()}": value for name, value in settings.items()},
    }
    if path_prefix:
        env["PATH"] = f"{path_prefix}:{env.get('PATH', '')}"
    marker = "mqtt subscribed" if mqtt_url else "jobs-agent starting"
    log_path = processes.directory / f"agent-{device['device_name']}-{len(processes.started)}.log"
    agent = ServerProcess(f"agent {device['device_name']}", [sys.executable, "-m", "agent", "run"],
                          env, log_path, lambda process: marker in process.log_text())
    processes.started.append(agent)
    return agent.start()


def run_enroll(api_url: str, token: str, home: Path, *extra: str) -> subprocess.CompletedProcess:
    """`jobs-agent enroll` writing under ``home`` (its hardware id from ``home/machine-id``)."""
    machine_id = home / "machine-id"
    home.mkdir(parents=True, exist_ok=True)
    if not machine_id.exists():
        machine_id.write_text("0123456789abcdef0123456789abcdef\n")
    return subprocess.run(
        [sys.executable, "-m", "agent", "enroll", "--server", api_url, "--enrollment-token",
         token, "--config", str(home / "etc" / "agent.conf"), "--token-file",
         str(home / "etc" / "token"), "--hardware-id-file", str(machine_id), "--no-start",
         *extra], capture_output=True, text=True, timeout=60)
