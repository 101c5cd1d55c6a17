"""Every named query the code runs is defined, and every defined query is run by the code.

Queries are run by name (``db.one("get_device", ...)``), so a typo or a query left behind by a
change would only show at run time. Tests do not count as users: a query only they run belongs
in the tests.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

from dispatcher import db

PROJECT = Path(__file__).resolve().parents[2]
PACKAGES = ("dispatcher", "api", "workers")
RUNS_A_QUERY = {"one", "row", "all", "execute", "one_unprepared", "row_unprepared",
                "all_unprepared", "own_one", "page", "all_filtered", "row_filtered"}


def queries_run_by_the_code() -> dict[str, list[str]]:
    """Query name -> the places that run it."""
    used: dict[str, list[str]] = {}
    for package in PACKAGES:
        for path in sorted((PROJECT / package).rglob("*.py")):
            tree = ast.parse(path.read_text(), str(path))
            for node in ast.walk(tree):
                for name in _query_names(node):
                    used.setdefault(name, []).append(f"{path.relative_to(PROJECT)}:{node.lineno}")
    return used


def _query_names(node: ast.AST) -> list[str]:
    if isinstance(node, ast.Subscript) and "QUERIES" in (
            getattr(node.value, "id", None), getattr(node.value, "attr", None)):
        return [_literal(node.slice)] if _literal(node.slice) else []
    if not isinstance(node, ast.Call):
        return []
    func = node.func
    called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
    if called not in RUNS_A_QUERY or not node.args:
        return []
    names = [_literal(node.args[0])]
    if called == "page":  # page(query, key, count_query, ...)
        names.append(_literal(node.args[2]) if len(node.args) > 2 else None)
    return [name for name in names if name]


def _literal(node: ast.AST) -> str | None:
    return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None


def test_every_query_the_code_runs_is_defined():
    undefined = {name: places for name, places in queries_run_by_the_code().items()
                 if name not in db.QUERIES}
    assert not undefined


def test_every_defined_query_is_run_by_the_code():
    assert sorted(set(db.QUERIES) - set(queries_run_by_the_code())) == []


def test_each_query_file_sits_beside_a_module_of_its_name():
    for path in db.query_files():
        assert path.with_suffix(".py").exists(), f"{path} has no module beside it"


def test_a_part_is_shared_sql_each_query_takes_where_it_names_it(tmp_path):
    (tmp_path / "rooms.sql").write_text(
        "-- part: live_rooms\n-- Rooms in use.\nSELECT id FROM rooms WHERE live\n\n"
        "-- name: count_live_rooms\nSELECT count(*) FROM ({{part:live_rooms}}) r;\n\n"
        "-- name: first_live_room\n{{part:live_rooms}} ORDER BY id LIMIT 1;\n")
    assert db.load_queries(tmp_path) == {
        "count_live_rooms": "SELECT count(*) FROM (SELECT id FROM rooms WHERE live) r;",
        "first_live_room": "SELECT id FROM rooms WHERE live ORDER BY id LIMIT 1;",
    }


def test_every_part_is_taken_by_a_query():
    texts = "".join(path.read_text() for path in db.query_files())
    parts = re.findall(r"^--\s*part:\s*([a-z_][a-z0-9_]*)\s*$", texts, re.MULTILINE)
    assert [part for part in parts if f"{{{{part:{part}}}}}" not in texts] == []
