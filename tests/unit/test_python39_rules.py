"""The agent stays runnable on Python 3.9 (Debian Bullseye): cheap checks on every run.

tests/distros runs the agent's tests under Bullseye's Python 3.9 for real; these catch the two
usual slips before that: a schema module the agent imports that ruff still checks as 3.11 code,
and a runtime ``X | Y`` union (Python 3.10+) in an isinstance check.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def py39_files() -> set[str]:
    ruff = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["ruff"]
    return {path for path, target in ruff["per-file-target-version"].items() if target == "py39"}


def schema_modules_the_agent_imports() -> set[str]:
    program = ("import json, pkgutil, sys, importlib, agent\n"
               "for module in pkgutil.iter_modules(agent.__path__):\n"
               "    if module.name == '__main__': continue\n"
               "    importlib.import_module('agent.' + module.name)\n"
               "print(json.dumps(sorted(m.__file__ for n, m in sys.modules.items()"
               " if n.startswith('schemas.'))))")
    files = json.loads(subprocess.run([sys.executable, "-c", program], cwd=REPO, check=True,
                                      capture_output=True, text=True).stdout)
    return {str(Path(file).relative_to(REPO)) for file in files}


def test_every_schema_module_the_agent_imports_is_checked_as_python_39() -> None:
    assert "agent/**" in py39_files()
    assert schema_modules_the_agent_imports() <= py39_files()


def runtime_unions(path: Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
                and node.func.id in ("isinstance", "issubclass") and len(node.args) == 2
                and any(isinstance(part, ast.BinOp) and isinstance(part.op, ast.BitOr)
                        for part in ast.walk(node.args[1]))):
            found.append(f"{path.relative_to(REPO)}:{node.lineno}")
    return found


def test_no_type_union_is_evaluated_at_run_time() -> None:
    files = sorted((REPO / "agent").glob("*.py")) + [
        REPO / name for name in py39_files() if name.endswith(".py")]
    assert [line for path in files for line in runtime_unions(path)] == []
