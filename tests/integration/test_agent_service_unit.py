"""The agent's systemd unit: hardened where the agent's jobs allow, not where they would break
(jobs install packages, restart services and write /etc as root); the opt-in drop-in for fleets
whose jobs do not change the system still leaves the agent every path it writes; and systemd
itself finds nothing wrong in either (``systemd-analyze verify``: no systemd as PID 1 needed)."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path, PurePosixPath

import pytest

from agent.config import AgentConfig

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
DEBIAN_UNIT = DEPLOY / "debian" / "jobs-agent.service"
PIP_UNIT = DEPLOY / "jobs-agent.service"
HARDENED = DEPLOY / "debian" / "hardened.conf"

# Kept on by default: none takes away anything a job legitimately does.
DEFAULT_PROTECTION = {"PrivateTmp": "yes", "LockPersonality": "yes", "RestrictRealtime": "yes"}
# Each would break some job a fleet runs as root (installing packages, setting the clock or the
# host name, sysctl, loading modules, sudo in a runAsUser step, containers): opt-in only.
ONLY_IN_THE_DROP_IN = ("ProtectSystem", "ProtectHome", "NoNewPrivileges", "RestrictSUIDSGID",
                       "ProtectKernelModules", "ProtectKernelTunables", "ProtectKernelLogs",
                       "ProtectClock", "ProtectHostname", "ProtectControlGroups",
                       "RestrictNamespaces", "SystemCallArchitectures")
# What systemd leaves writable under ProtectSystem=strict besides what a unit names.
API_FILE_SYSTEMS = ("/dev", "/proc", "/sys")


def directives(*files: Path) -> dict[str, list[str]]:
    """Every key's values in the order systemd reads them (drop-ins after the unit); an empty
    assignment resets the list, as systemd does."""
    found: dict[str, list[str]] = {}
    for file in files:
        for line in file.read_text().splitlines():
            line = line.strip()
            if not line or line.startswith(("#", ";", "[")):
                continue
            key, _, value = line.partition("=")
            found[key.strip()] = ([] if value.strip() == ""
                                  else [*found.get(key.strip(), []), value.strip()])
    return found


def last(found: dict[str, list[str]], key: str) -> str:
    return found[key][-1]


def writable_roots(found: dict[str, list[str]]) -> list[PurePosixPath]:
    """Where the service may write, for ProtectSystem=strict."""
    assert last(found, "ProtectSystem") == "strict"
    roots = [*API_FILE_SYSTEMS, *(p.lstrip("-") for v in found.get("ReadWritePaths", [])
                                  for p in v.split())]
    roots += [f"/var/lib/{name}" for v in found.get("StateDirectory", []) for name in v.split()]
    if last(found, "PrivateTmp") == "yes":
        roots += ["/tmp", "/var/tmp"]
    return [PurePosixPath(root) for root in roots]


def agent_writes(found: dict[str, list[str]]) -> list[PurePosixPath]:
    """The paths the agent itself writes while it runs: its state directory (as the unit sets
    it, and by default) and the temporary directory."""
    environment = dict(v.split("=", 1) for v in found["Environment"])
    return [PurePosixPath(environment["JOBS_AGENT_STATE_DIR"]),
            PurePosixPath(AgentConfig().state_dir), PurePosixPath(tempfile.gettempdir())]


@pytest.mark.parametrize("unit", [DEBIAN_UNIT, PIP_UNIT], ids=["debian", "pip"])
def test_the_unit_protects_what_jobs_do_not_need_and_restarts_with_limits(unit):
    found = directives(unit)
    assert {key: last(found, key) for key in DEFAULT_PROTECTION} == DEFAULT_PROTECTION
    assert [key for key in ONLY_IN_THE_DROP_IN if key in found] == []
    assert last(found, "User") == "root"
    assert (last(found, "StateDirectoryMode"), last(found, "ConfigurationDirectoryMode")) == (
        "0700", "0700")
    assert last(found, "Restart") == "always" and int(last(found, "RestartSec")) >= 5
    # A bad configuration (exit code 2) is not restarted for ever; anything else is.
    assert last(found, "RestartPreventExitStatus") == "2"
    assert last(found, "StartLimitIntervalSec") == "0"
    assert last(found, "KillMode") == "mixed"


def test_the_pip_unit_is_the_package_unit_but_for_where_the_agent_is():
    debian, pip = directives(DEBIAN_UNIT), directives(PIP_UNIT)
    for found in (debian, pip):
        found.pop("Documentation", None)
    assert last(debian, "ExecStart").startswith("/usr/bin/jobs-agent run")
    assert last(pip, "ExecStart").startswith("/opt/jobs-agent/bin/jobs-agent run")
    assert {k: v for k, v in debian.items() if k != "ExecStart"} == {
        k: v for k, v in pip.items() if k != "ExecStart"}


def test_under_the_hardened_drop_in_the_agent_still_writes_where_it_must():
    found = directives(DEBIAN_UNIT, HARDENED)
    assert [key for key in ONLY_IN_THE_DROP_IN if key not in found] == []
    roots = writable_roots(found)
    for path in agent_writes(found):
        assert any(path == root or root in path.parents for root in roots), path
    # Its config, token and handlers are read, never written, while it runs.
    assert not any(PurePosixPath("/etc/jobs-agent") == root
                   or root in PurePosixPath("/etc/jobs-agent").parents for root in roots)
    assert "InaccessiblePaths" not in found


@pytest.mark.skipif(shutil.which("systemd-analyze") is None,
                    reason="systemd-analyze is not installed (Debian package systemd)")
@pytest.mark.parametrize("drop_in", [False, True], ids=["unit", "with-hardened-drop-in"])
@pytest.mark.parametrize("unit", [DEBIAN_UNIT, PIP_UNIT], ids=["debian", "pip"])
def test_systemd_verifies_the_unit_without_a_word(unit, drop_in, tmp_path):
    # verify checks that ExecStart exists: the agent is not installed here, this Python is.
    command = last(directives(unit), "ExecStart").split()[0]
    (tmp_path / "jobs-agent.service").write_text(
        unit.read_text().replace(f"ExecStart={command} ", f"ExecStart={sys.executable} "))
    if drop_in:
        (tmp_path / "jobs-agent.service.d").mkdir()
        shutil.copy(HARDENED, tmp_path / "jobs-agent.service.d" / "hardened.conf")
    done = subprocess.run(["systemd-analyze", "verify", "--man=no",
                           str(tmp_path / "jobs-agent.service")],
                          capture_output=True, text=True, timeout=60)
    assert (done.returncode, done.stdout + done.stderr) == (0, "")
