"""The distro tests may build this machine's Debian trees first (debootstrap, minutes on a busy
machine): each may take as long as that build, beyond the suite's usual per-test limit."""

from __future__ import annotations

import pytest
from trees import BUILD_TIMEOUT_S

TEST_TIMEOUT_S = BUILD_TIMEOUT_S + 600


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if item.path.parent.name == "distros":
            item.add_marker(pytest.mark.timeout(TEST_TIMEOUT_S))
