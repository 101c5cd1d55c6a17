"""The agent's unit tests under the oldest and newest Python it supports, for real.

They run in Debian Bullseye (Python 3.9, marshmallow 3.10, paho-mqtt 1.5) and Trixie
(Python 3.13, marshmallow 3.26, paho-mqtt 2.1) with nothing but Debian's own packages: what a
device gets from ``apt install``.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from trees import OLDEST_AND_NEWEST, PYTHON_VERSIONS, REPO, root_of, tree

pytestmark = pytest.mark.slow

# The agent's tests, what they import, and the files they read, at their places in the repository.
AGENT_FILES = [
    *(REPO / "tests" / "unit").glob("test_agent*.py"),
    REPO / "tests" / "unit" / "test_job_document.py",
    REPO / "tests" / "agent_fakes.py", REPO / "tests" / "job_templates.py",
    REPO / "deploy" / "agent.conf.example",
]


def copy_agent_and_tests(destination: Path) -> None:
    for package in ("agent", "schemas"):
        shutil.copytree(REPO / package, destination / package,
                        ignore=shutil.ignore_patterns("__pycache__"))
    for source in AGENT_FILES:
        copy = destination / source.relative_to(REPO)
        copy.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(source, copy)


@pytest.mark.parametrize("suite", OLDEST_AND_NEWEST)
def test_agent_unit_tests_pass_on_debian_python(suite: str, tmp_path: Path) -> None:
    with root_of(suite, tmp_path / suite) as root:
        copy_agent_and_tests(root.file("/srv/device-jobs"))
        version = root.run(["python3", "--version"]).stdout
        assert f"Python {PYTHON_VERSIONS[suite]}." in version
        ran = root.run(["sh", "-c", "cd /srv/device-jobs && python3 -m pytest -q "
                        "-p no:cacheprovider tests/unit"], check=False,
                       env={"PYTHONPATH": "/srv/device-jobs:/srv/device-jobs/tests"})
        summary = ran.stdout.strip().splitlines()[-1] if ran.stdout.strip() else ran.stderr
        assert ran.returncode == 0, f"{suite} {version}: {ran.stdout[-6000:]}{ran.stderr[-2000:]}"
        passed = re.search(r"(\d+) passed", summary)
        assert passed and int(passed.group(1)) >= 200, summary


def test_a_tree_that_cannot_be_built_fails_the_test_with_the_reason(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DEVICE_JOBS_TREES", str(tmp_path))
    with pytest.raises(pytest.fail.Exception, match="no-such-suite tree could not be built"
                       "(.|\n)*debootstrap no-such-suite failed"):
        tree("no-such-suite")
