"""Chaos tests run on services of their own (``tests/private_services.py``): each test builds a
``ChaosStack`` through the ``chaos_stack`` factory, and every process and service it started
is stopped when the test ends, however it ends."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from chaos_stack import ChaosStack


@pytest.fixture
def chaos_stack(tmp_path: Path) -> Iterator:
    stacks: list[ChaosStack] = []

    def build(**options) -> ChaosStack:
        stack = ChaosStack(tmp_path / f"stack-{len(stacks)}", **options)
        stacks.append(stack)
        return stack

    try:
        yield build
    finally:
        for stack in stacks:
            stack.close()
