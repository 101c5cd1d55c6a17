"""The packages import as DESIGN.md says: the domain only ``schemas`` of ours, and Celery or kombu
only in its one sender; ``schemas`` nothing of ours; the agent and the client only ``schemas``;
and no module imports, through any chain, a module that imports it back."""

from __future__ import annotations

import ast
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[2]
PACKAGES = ("dispatcher", "api", "workers", "agent", "client", "schemas")
# Package -> the packages of ours it may import besides itself.
MAY_IMPORT = {
    "dispatcher": {"schemas"},
    "schemas": set(),
    "api": {"dispatcher", "schemas"},
    "workers": {"dispatcher", "schemas"},
    "agent": {"schemas"},
    "client": {"schemas"},
}
SENDER = "dispatcher.sender"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PROJECT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules() -> dict[str, Path]:
    return {module_name(path): path for package in PACKAGES
            for path in sorted((PROJECT / package).rglob("*.py"))}


def imports_of(name: str, path: Path) -> set[str]:
    """Every module ``path`` imports, anywhere in it (function bodies too)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return found


def project_graph() -> dict[str, set[str]]:
    known = modules()
    return {name: {imported for imported in imports_of(name, path) if imported in known}
            for name, path in known.items()}


def test_each_package_imports_only_what_the_design_allows():
    wrong = []
    for name, path in modules().items():
        package = name.split(".")[0]
        for imported in imports_of(name, path):
            top = imported.split(".")[0]
            if top in PACKAGES and top != package and top not in MAY_IMPORT[package]:
                wrong.append(f"{name} imports {imported}")
    assert wrong == []


def test_only_the_sender_imports_celery_or_kombu_in_the_domain():
    wrong = [f"{name} imports {imported}" for name, path in modules().items()
             if name.split(".")[0] == "dispatcher" and name != SENDER
             for imported in imports_of(name, path)
             if imported.split(".")[0] in ("celery", "kombu")]
    assert wrong == []


def test_no_module_imports_itself_back_through_others():
    graph = project_graph()
    # A package imports its own modules to re-export them; that is not a cycle of the design.
    edges = {name: {other for other in targets if not name.startswith(other + ".")}
             for name, targets in graph.items()}
    cycles = [component for component in strongly_connected(edges) if len(component) > 1]
    assert cycles == []


def strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's strongly connected components, iteratively."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    components: list[list[str]] = []
    counter = 0
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is None:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    components.append(sorted(component))
            elif child not in index:
                index[child] = low[child] = counter
                counter += 1
                stack.append(child)
                on_stack.add(child)
                work.append((child, iter(sorted(graph.get(child, ())))))
            elif child in on_stack:
                low[node] = min(low[node], index[child])
    return components
