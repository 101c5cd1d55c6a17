"""The packages import as DESIGN's table says: the domain imports none of the adapters nor the
client, and the client's command modules do not import each other in a circle.

Imports inside functions count: they run as surely as the others, only later.
"""

from __future__ import annotations

import ast
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[2]


def imported_modules(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def module_name(path: Path) -> str:
    parts = path.relative_to(PROJECT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def test_the_domain_imports_neither_the_adapters_nor_the_client():
    found = sorted(f"{path.relative_to(PROJECT)} imports {name}"
                   for path in (PROJECT / "dispatcher").rglob("*.py")
                   for name in imported_modules(path)
                   if name.partition(".")[0] in {"api", "workers", "agent", "client"})
    assert found == []


def test_the_client_modules_import_each_other_without_a_cycle():
    paths = {module_name(path): path for path in (PROJECT / "client").glob("*.py")}
    graph = {module: imported_modules(path) & set(paths) for module, path in paths.items()}
    cycles = []

    def walk(module: str, trail: list[str]) -> None:
        for imported in sorted(graph[module]):
            if imported in trail:
                cycles.append(trail[trail.index(imported):] + [imported])
            else:
                walk(imported, [*trail, imported])

    for module in sorted(graph):
        walk(module, [module])
    assert cycles == []
