"""`dispatcher demo` end to end with three devices: every device succeeds, nothing is left."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest
from suite_constants import PG_ADMIN_URL

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.slow


def processes_whose_environment_has(marker: bytes) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if marker in (entry / "environ").read_bytes():
                found.append(int(entry.name))
        except OSError:  # gone meanwhile, or not ours to read
            continue
    return found


@pytest.fixture
def demo_database():
    name = f"djtest_demo_{os.getpid()}"
    yield name
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_demo_with_three_devices_succeeds_and_stops_everything(demo_database):
    result = subprocess.run(
        [sys.executable, "-m", "dispatcher", "demo", "--devices", "3",
         "--database-name", demo_database, "--timeout-s", "120"],
        capture_output=True, text=True, timeout=300, cwd=ROOT,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output

    # The group filter picks the production Raspberry Pis (2 of 3); the fleet job all three.
    rows = {line.split("  ")[1].strip(): line.split() for line in result.stdout.splitlines()
            if line.startswith("  Health check")}
    group = rows["Health check - production Raspberry Pis"]
    fleet = rows["Health check all devices"]
    assert group[-7:-3] == ["SUCCEEDED", "2", "2", "0"], group
    assert fleet[-7:-3] == ["SUCCEEDED", "3", "3", "0"], fleet
    assert "hello from device-jobs" in result.stdout  # a device's stdout, from the template

    api_url = re.search(r"Swagger UI\s+(http://127\.0\.0\.1:\d+)/api/v1/docs", result.stdout)
    assert api_url, result.stdout
    assert re.search(r"Flower\s+http://127\.0\.0\.1:\d+/", result.stdout)
    portal = re.search(r"Portal\s+(http://127\.0\.0\.1:\d+)/portal/\s+\(sign in with the "
                       r"admin token (\S+)\)", result.stdout)
    assert portal and portal.group(1) == api_url.group(1), result.stdout

    # Nothing the demo started is still running: no server process (their DATABASE_URL names
    # the demo's database) and no agent (they talk to the demo's API).
    agent_marker = f"JOBS_AGENT_SERVER_URL={api_url.group(1)}\0".encode()
    assert processes_whose_environment_has(agent_marker) == []
    assert processes_whose_environment_has(f"dbname={demo_database} ".encode()) == []
