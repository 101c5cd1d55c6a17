"""Debian trees for the agent's distro tests, and throwaway root filesystems made from them.

``scripts/agent-trees`` builds each suite's tree once per machine (outside the repository);
a test mounts an overlay over it, so what the test installs or writes is gone afterwards and
the cached tree stays as built. A tree that cannot be built fails the test with the reason:
these tests never skip.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
AGENT_TREES = REPO / "scripts" / "agent-trees"
# Oldest and newest Python the agent supports: Bullseye's 3.9 and Trixie's 3.13.
OLDEST_AND_NEWEST = ("bullseye", "trixie")
ALL_SUITES = ("bullseye", "bookworm", "trixie")
PYTHON_VERSIONS = {"bullseye": "3.9", "bookworm": "3.11", "trixie": "3.13"}
BUILD_TIMEOUT_S = 1800
CHROOT_ENV = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
              "LANG": "C.UTF-8", "HOME": "/root", "DEBIAN_FRONTEND": "noninteractive"}


def host_tools() -> None:
    """debootstrap, debhelper and lintian on this machine, installed first if missing."""
    if os.geteuid() != 0:
        pytest.fail("the distro tests need root (apt-get, debootstrap, mount, chroot)")
    done = subprocess.run([str(AGENT_TREES), "--tools"], capture_output=True, text=True,
                          timeout=BUILD_TIMEOUT_S)
    if done.returncode != 0:
        pytest.fail(f"the host tools could not be installed:\n{done.stderr}")


def build_agent_deb(version: str, output: Path) -> Path:
    """``scripts/build-agent-deb --version VERSION`` into ``output``: the package's path."""
    host_tools()
    built = subprocess.run([str(REPO / "scripts" / "build-agent-deb"), "--version", version,
                            "--output", str(output)], capture_output=True, text=True, timeout=300)
    assert built.returncode == 0, built.stderr
    return Path(built.stdout.split()[-1])


def tree(suite: str) -> Path:
    """The cached tree of ``suite``, built first if this machine has none yet."""
    if os.geteuid() != 0:
        pytest.fail("the distro tests need root (debootstrap, mount, chroot)")
    # The first test asks for every tree: debootstrap then fetches the three suites at once.
    wanted = ALL_SUITES if suite in ALL_SUITES else (suite,)
    built = subprocess.run([str(AGENT_TREES), *wanted], capture_output=True, text=True,
                           timeout=BUILD_TIMEOUT_S)
    if built.returncode != 0:
        pytest.fail(f"the {suite} tree could not be built:\n{built.stderr}")
    paths = dict(line.split(" ", 1) for line in built.stdout.splitlines())
    return Path(paths[suite])


class Root:
    """A root filesystem: ``suite``'s tree under a private overlay, with /proc and /dev."""

    def __init__(self, suite: str, path: Path) -> None:
        self.suite = suite
        self.path = path

    def file(self, inside: str) -> Path:
        """Where the file ``inside`` (an absolute path in the root) is seen from the host."""
        return self.path / inside.lstrip("/")

    def command(self, argv: Sequence[str]) -> list[str]:
        return ["chroot", str(self.path), *argv]

    def run(self, argv: Sequence[str], check: bool = True, timeout_s: float = 600,
            env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
        done = subprocess.run(self.command(argv), capture_output=True, text=True,
                              timeout=timeout_s, env={**CHROOT_ENV, **(env or {})})
        if check and done.returncode != 0:
            pytest.fail(f"{' '.join(argv)} failed in {self.suite} ({done.returncode}):\n"
                        f"{done.stdout[-4000:]}\n{done.stderr[-4000:]}")
        return done

    def popen(self, argv: Sequence[str], log_path: Path,
              env: dict[str, str] | None = None) -> subprocess.Popen:
        with log_path.open("ab") as log:
            return subprocess.Popen(self.command(argv), stdout=log, stderr=subprocess.STDOUT,
                                    env={**CHROOT_ENV, **(env or {})}, start_new_session=True)


@contextmanager
def root_of(suite: str, scratch: Path) -> Iterator[Root]:
    """A writable root made from ``suite``'s cached tree; everything written stays in
    ``scratch`` and the mounts are gone afterwards."""
    lower = tree(suite)
    upper, work, merged = scratch / "upper", scratch / "work", scratch / "root"
    for directory in (upper, work, merged):
        directory.mkdir(parents=True)
    mounts: list[Path] = []

    def mount(*argv: str) -> None:
        subprocess.run(["mount", *argv], check=True, capture_output=True)
        mounts.append(Path(argv[-1]))

    try:
        mount("-t", "overlay", "overlay", "-o",
              f"lowerdir={lower},upperdir={upper},workdir={work}", str(merged))
        mount("-t", "proc", "proc", str(merged / "proc"))
        mount("--bind", "/dev", str(merged / "dev"))
        yield Root(suite, merged)
    finally:
        for point in reversed(mounts):
            subprocess.run(["umount", str(point)], check=False, capture_output=True)
            if os.path.ismount(point):
                subprocess.run(["umount", "--lazy", str(point)], check=False)
        # Never delete through a mount that is still there (the host's /dev is bound in it).
        if not any(os.path.ismount(point) for point in mounts):
            shutil.rmtree(scratch, ignore_errors=True)
