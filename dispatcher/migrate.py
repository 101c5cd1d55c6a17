"""Apply the numbered SQL files in ``dispatcher/migrations`` in order, each exactly once.

Safe to run from several processes at once: the whole run holds a PostgreSQL advisory lock,
so a second process waits, then finds nothing left to do.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path

import psycopg
import psycopg.sql

from dispatcher.db import QUERIES

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
MIGRATION_LOCK_KEY = 0x6A6F6273  # "jobs"
_FILE = re.compile(r"^(\d{3,})_([a-z0-9_]+)\.sql$")

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    path: Path


def available_migrations(directory: Path = MIGRATIONS_DIR) -> list[Migration]:
    found = []
    for path in directory.iterdir():
        match = _FILE.match(path.name)
        if match:
            found.append(Migration(int(match.group(1)), match.group(2), path))
    found.sort(key=lambda m: m.version)
    versions = [m.version for m in found]
    if len(versions) != len(set(versions)):
        raise RuntimeError(f"two migrations share a number in {directory}")
    return found


def migrate(database_url: str, up_to: int | None = None) -> list[int]:
    """Apply pending migrations (those numbered up to ``up_to``, when given); return the
    versions applied by this call."""
    applied_now: list[int] = []
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(QUERIES["lock_migrations"], {"key": MIGRATION_LOCK_KEY})
        try:
            conn.execute(QUERIES["create_schema_migrations"])
            done = {row[0] for row in conn.execute(QUERIES["applied_migrations"])}
            for migration in available_migrations():
                if migration.version in done or (up_to is not None and migration.version > up_to):
                    continue
                with conn.transaction():
                    conn.execute(migration.path.read_text())
                    conn.execute(QUERIES["record_migration"],
                                 {"version": migration.version, "name": migration.name})
                log.info("migration applied version=%s name=%s", migration.version, migration.name)
                applied_now.append(migration.version)
        finally:
            conn.execute(QUERIES["unlock_migrations"], {"key": MIGRATION_LOCK_KEY})
    return applied_now


def ensure_database(database_url: str) -> bool:
    """Create the database named in ``database_url`` when it does not exist yet."""
    info = psycopg.conninfo.conninfo_to_dict(database_url)
    name = str(info.get("dbname") or "")
    if not name:
        return False
    admin_url = psycopg.conninfo.make_conninfo(database_url, dbname="postgres")
    with psycopg.connect(admin_url, autocommit=True) as conn:
        if conn.execute(QUERIES["database_exists"], {"name": name}).fetchone():
            return False
        try:
            conn.execute(psycopg.sql.SQL(QUERIES["create_database"]).format(
                name=psycopg.sql.Identifier(name)))
        except psycopg.errors.DuplicateDatabase:
            return False
    log.info("database created name=%s", name)
    return True
