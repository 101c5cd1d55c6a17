"""The schema of a migrated database as ``pg_dump`` prints it, normalized for ``schema.sql``.

``tests/schema.sql`` is the whole data model in one file, checked against a freshly
migrated database by ``tests/integration/test_schema.py``. After changing a migration, write it
again with ``.venv/bin/python tests/schema_dump.py``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import psycopg

SCHEMA_FILE = Path(__file__).resolve().parent / "schema.sql"
PG_ADMIN_URL = os.environ.get("TEST_PG_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
# Lines that say nothing about the schema: pg_dump's comments, session settings and the
# per-dump random key of its \restrict guard.
_NOISE = ("--", "SET ", "SELECT pg_catalog.set_config", "\\restrict", "\\unrestrict")


def dump_schema(database_url: str) -> str:
    """The schema of ``database_url``, as ``schema.sql`` holds it."""
    out = subprocess.run(
        ["pg_dump", "--schema-only", "--no-owner", "--no-privileges", "--dbname", database_url],
        check=True, capture_output=True, text=True,
    ).stdout
    lines = [line.rstrip() for line in out.splitlines() if not line.startswith(_NOISE)]
    text = "\n".join(lines)
    while "\n\n\n" in text:
        text = text.replace("\n\n\n", "\n\n")
    header = ("-- The schema that dispatcher/migrations builds, as pg_dump prints it (written\n"
              "-- by tests/schema_dump.py, checked by tests/integration/test_schema.py).\n")
    return header + text.strip() + "\n"


def main() -> int:
    from dispatcher.migrate import migrate

    name = f"djschema_{uuid.uuid4().hex[:8]}"
    url = psycopg.conninfo.make_conninfo(PG_ADMIN_URL, dbname=name)
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        migrate(url)
        SCHEMA_FILE.write_text(dump_schema(url))
    finally:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    print(f"wrote {SCHEMA_FILE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
