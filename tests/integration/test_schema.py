"""The checked-in schema is the schema the migrations build."""

from __future__ import annotations

import difflib

import psycopg
from schema_dump import SCHEMA_FILE, dump_schema
from suite_constants import PG_ADMIN_URL


def test_a_migrated_database_matches_schema_sql(template_database):
    migrated = dump_schema(psycopg.conninfo.make_conninfo(PG_ADMIN_URL, dbname=template_database))
    expected = SCHEMA_FILE.read_text()
    diff = "".join(difflib.unified_diff(
        expected.splitlines(keepends=True), migrated.splitlines(keepends=True),
        "tests/schema.sql", "migrated database",
    ))
    assert not diff, ("tests/schema.sql differs from what the migrations build; write it "
                      "again with .venv/bin/python tests/schema_dump.py\n" + diff)
