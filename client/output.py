"""Printing answers: JSON as the API sent it, or a table that fits the terminal."""

from __future__ import annotations

import json
import shutil
import sys
from collections.abc import Callable, Iterable, Sequence
from typing import Any, TextIO

Column = tuple[str, Callable[[dict], object]]
MIN_COLUMN_WIDTH = 4
GAP = "  "


def column(header: str, key: str) -> Column:
    return header, lambda row: row.get(key)


def print_json(data: object, out: TextIO | None = None) -> None:
    print(json.dumps(data, indent=2, default=str), file=out or sys.stdout)


def cell(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, dict | list):
        return json.dumps(value, separators=(",", ":"))
    return " ".join(str(value).split())


def table(rows: Iterable[dict], columns: Sequence[Column], width: int | None = None) -> str:
    """Rows as aligned columns no wider than ``width`` (the terminal's by default): the widest
    columns give way first, their cells cut with '…'."""
    width = width or shutil.get_terminal_size().columns
    grid = [[header for header, _ in columns]]
    grid += [[cell(value(row)) for _, value in columns] for row in rows]
    widths = [max(len(line[i]) for line in grid) for i in range(len(columns))]
    room = width - len(GAP) * (len(columns) - 1)
    while sum(widths) > room:
        widest = max(range(len(widths)), key=lambda i: widths[i])
        if widths[widest] <= MIN_COLUMN_WIDTH:
            break
        widths[widest] -= 1
    return "\n".join(
        GAP.join(_fit(text, widths[i]) for i, text in enumerate(line)).rstrip() for line in grid
    )


def _fit(text: str, width: int) -> str:
    return text.ljust(width) if len(text) <= width else text[: width - 1] + "…"


def print_rows(rows: list[dict], columns: Sequence[Column], output: str,
               whole: Any = None) -> None:
    """``rows`` as a table, or ``whole`` (the API's answer, rows by default) as JSON."""
    if output == "json":
        print_json(rows if whole is None else whole)
    elif rows:
        print(table(rows, columns))
    else:
        print("(none)")


def print_answer(answer: Any, output: str, line: str) -> None:
    """What an action did: the API's ``answer`` as JSON, or ``line`` for a person."""
    if output == "json":
        print_json(answer)
    else:
        print(line)


def print_record(record: dict, output: str, fields: Sequence[str] | None = None) -> None:
    """One object: JSON, or ``field  value`` lines (every field unless ``fields``), documents
    (objects, lists) in full as indented JSON after them rather than cut to the width."""
    if output == "json":
        print_json(record)
        return
    names = [f for f in (fields or list(record)) if f in record]
    documents = [n for n in names if isinstance(record[n], dict | list) and record[n]]
    print(table([{"field": n, "value": record[n]} for n in names if n not in documents],
                [column("FIELD", "field"), column("VALUE", "value")]))
    for name in documents:
        print(f"{name}:")
        print(json.dumps(record[name], indent=2, default=str))
