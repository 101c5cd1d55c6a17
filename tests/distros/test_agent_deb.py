"""The agent's Debian package, installed for real in Debian Bullseye, Bookworm and Trixie.

``apt install ./jobs-agent_*.deb`` with Debian's own Python, marshmallow and paho-mqtt; an
upgrade keeps the device's config and state; remove keeps them, purge removes them; lintian
finds no error or warning in the package.
"""

from __future__ import annotations

import shutil
import stat
import subprocess
from pathlib import Path

import pytest
from trees import ALL_SUITES, build_agent_deb, root_of

pytestmark = pytest.mark.slow

OLD, NEW = "0.1.0+1", "0.1.0+2"
CONFIG = ("[agent]\nserver_url = http://127.0.0.1:1\n"
          "device_uuid = 8479359e-dbeb-4858-813c-e8a9008dde04\n")


@pytest.fixture(scope="module")
def debs(tmp_path_factory) -> dict[str, Path]:
    output = tmp_path_factory.mktemp("debs")
    return {version: build_agent_deb(version, output) for version in (OLD, NEW)}


def test_lintian_finds_no_error_or_warning_in_the_package(debs) -> None:
    checked = subprocess.run(["lintian", "--allow-root", str(debs[NEW])], capture_output=True,
                             text=True, timeout=300)
    problems = [line for line in checked.stdout.splitlines() if line.startswith(("E:", "W:"))]
    assert problems == [], checked.stdout
    assert checked.returncode == 0, checked.stdout + checked.stderr


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def package_state(root) -> str:
    return root.run(["dpkg-query", "-W", "-f=${Version} ${db:Status-Abbrev}", "jobs-agent"],
                    check=False).stdout.strip()


@pytest.mark.parametrize("suite", ALL_SUITES)
def test_install_upgrade_remove_and_purge(suite: str, debs, tmp_path: Path) -> None:
    with root_of(suite, tmp_path / suite) as root:
        for deb in debs.values():
            shutil.copy(deb, root.file(f"/tmp/{deb.name}"))
        root.run(["apt-get", "install", "-y", f"/tmp/{debs[OLD].name}"])
        assert package_state(root) == f"{OLD} ii"
        helped = root.run(["jobs-agent", "--help"]).stdout
        assert "enroll" in helped and "run-document" in helped
        assert mode(root.file("/var/lib/jobs-agent")) == 0o700
        assert mode(root.file("/etc/jobs-agent/handlers")) == 0o700
        assert root.file("/lib/systemd/system/jobs-agent.service").is_file()
        conffiles = root.run(["dpkg-query", "-W", "-f=${Conffiles}", "jobs-agent"]).stdout
        assert "/etc/jobs-agent/agent.conf.example" in conffiles

        # What enrollment and the agent leave on a device.
        config, token = root.file("/etc/jobs-agent/agent.conf"), root.file("/etc/jobs-agent/token")
        state = root.file("/var/lib/jobs-agent/outbox.json")
        for path, text in ((config, CONFIG), (token, "device-token"), (state, "{}")):
            path.write_text(text)
            path.chmod(0o600)
        checked = root.run(["jobs-agent", "run-document", "--help"]).stdout
        assert "run-document" in checked

        root.run(["apt-get", "install", "-y", f"/tmp/{debs[NEW].name}"])
        assert package_state(root) == f"{NEW} ii"
        assert (config.read_text(), token.read_text(), state.read_text()) == (
            CONFIG, "device-token", "{}")
        assert mode(config) == mode(token) == 0o600

        root.run(["apt-get", "remove", "-y", "jobs-agent"])
        assert package_state(root) == f"{NEW} rc"
        assert not root.file("/usr/bin/jobs-agent").exists()
        assert config.exists() and token.exists() and state.exists()

        root.run(["apt-get", "purge", "-y", "jobs-agent"])
        assert package_state(root) in ("", "un")
        for gone in (config, token, state, root.file("/etc/jobs-agent"),
                     root.file("/var/lib/jobs-agent")):
            assert not gone.exists(), gone
