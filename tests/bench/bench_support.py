"""What the device-side benchmarks share: a fresh database, a fleet made in SQL, the API served
by gunicorn as deployed (deploy/gunicorn.conf.py), and wrk runs with a Lua script.

Run by hand; nothing here is collected by pytest.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
from psycopg import sql

from dispatcher.commands import stack
from dispatcher.migrate import migrate

PG_ADMIN_URL = os.environ.get("BENCH_PG_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
ADMIN_TOKEN = "bench-admin-token"
WRK_SCRIPT = Path(__file__).with_name("wrk_devices.lua")
SERVER_START_TIMEOUT_S = 60
# The gunicorn master of each server ``gunicorn()`` runs, by base URL.
_MASTERS: dict[str, int] = {}


def device_uuid(i: int) -> uuid.UUID:
    """The uuid of bench device ``i``; the SQL below makes the same one with md5()::uuid."""
    return uuid.UUID(hashlib.md5(f"bench-device-{i}".encode()).hexdigest())


def device_token(i: int) -> str:
    return f"bench-token-{i}"


REGISTER_FLEET_SQL = """
INSERT INTO devices (uuid, device_name, device_type, attributes, token_hash)
SELECT md5('bench-device-' || i)::uuid, 'bench-' || i, 'raspberry-pi',
       jsonb_build_object('rack', 'r' || (i %% 100)),
       sha256(convert_to('bench-token-' || i, 'UTF8'))
  FROM generate_series(1, %(devices)s) AS i
"""

INSERT_JOB_SQL = """
INSERT INTO job_executions (job_id, job_name, job_document, target_type, status, total_devices,
                            fanout_status, started_at)
VALUES (%(job_id)s, %(job_name)s, %(job_document)s, 'all', %(status)s, %(devices)s, 'DONE',
        CASE WHEN %(status)s = 'QUEUED' THEN NULL ELSE now() END)
"""

JOB_DOCUMENT = json.dumps({
    "version": "1.0", "includeStdOut": True,
    "steps": [{"name": "Check disk space", "type": "runCommand", "input": {"command": "df,-h"}}],
})


@contextmanager
def bench_database(name: str, admin_url: str = PG_ADMIN_URL,
                   template: str | None = None) -> Iterator[str]:
    """A freshly migrated database, dropped afterwards. Named after this process as well, so
    two people benchmarking on one machine never drop each other's database. With
    ``template``, a copy of that database (a fleet loaded once, see ``kept_template``),
    brought up to the current migrations."""
    name = f"{name}_{os.getpid()}"
    url = psycopg.conninfo.make_conninfo(admin_url, dbname=name)
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        copied = f' TEMPLATE "{template}"' if template else ""
        conn.execute(f'CREATE DATABASE "{name}"{copied}')
    migrate(url)
    try:
        yield url
    finally:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def kept_template(name: str, build: Callable[[str], object],
                  admin_url: str = PG_ADMIN_URL) -> str:
    """A database kept between runs to copy fleets from: made once (migrated, then ``build``
    given its URL loads it), reused as long as it exists. Drop it by hand to rebuild."""
    with psycopg.connect(admin_url, autocommit=True) as conn:
        if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
            return name
        conn.execute(f'DROP DATABASE IF EXISTS "{name}_building" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}_building"')
    url = psycopg.conninfo.make_conninfo(admin_url, dbname=f"{name}_building")
    migrate(url)
    build(url)
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'ALTER DATABASE "{name}_building" RENAME TO "{name}"')
    return name


# The indexes of these tables that no constraint owns, and their foreign keys: what a bulk load
# builds after the rows instead of maintaining row by row.
SECONDARY_INDEXES_SQL = """
SELECT n.nspname AS schema_name, c.relname AS name, pg_get_indexdef(i.indexrelid) AS definition
  FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
  JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE i.indrelid = ANY (%(tables)s::regclass[])
   AND NOT EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = i.indexrelid)
 ORDER BY c.relname
"""
FOREIGN_KEYS_SQL = """
SELECT conrelid::regclass::text AS table_name, conname AS name,
       pg_get_constraintdef(oid) AS definition
  FROM pg_constraint
 WHERE contype = 'f' AND conrelid = ANY (%(tables)s::regclass[])
 ORDER BY conname
"""
# Index builds sort in memory up to this; the machine's default (64MB) spills a 10M-row sort.
BUILD_MAINTENANCE_WORK_MEM = "1GB"


@contextmanager
def indexes_built_after_load(url: str, *tables: str) -> Iterator[None]:
    """Load rows into ``tables`` without their secondary indexes and foreign keys, then build
    each again from its own definition: a sorted index build and one validating join instead of
    a btree insert per index and a key lookup per foreign key for every row (at 10M rows with
    random device uuids the row-by-row way is most of the load, and grows with every job).
    Primary keys, unique constraints and triggers stay, so counters and uniqueness are kept as
    the rows arrive; the measured phase runs on the schema as migrated, checked here."""
    with psycopg.connect(url, autocommit=True) as conn:
        with conn.cursor(row_factory=psycopg.rows.dict_row) as cur:
            indexes = cur.execute(SECONDARY_INDEXES_SQL, {"tables": list(tables)}).fetchall()
            keys = cur.execute(FOREIGN_KEYS_SQL, {"tables": list(tables)}).fetchall()
        for key in keys:
            conn.execute(sql.SQL("ALTER TABLE {} DROP CONSTRAINT {}").format(
                sql.SQL(key["table_name"]), sql.Identifier(key["name"])))
        for index in indexes:
            conn.execute(sql.SQL("DROP INDEX {}").format(
                sql.Identifier(index["schema_name"], index["name"])))
    yield
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(sql.SQL("SET maintenance_work_mem = {}").format(
            sql.Literal(BUILD_MAINTENANCE_WORK_MEM)))
        for index in indexes:
            conn.execute(index["definition"])
        for key in keys:
            conn.execute(sql.SQL("ALTER TABLE {} ADD CONSTRAINT {} {}").format(
                sql.SQL(key["table_name"]), sql.Identifier(key["name"]),
                sql.SQL(key["definition"])))
        with conn.cursor(row_factory=psycopg.rows.dict_row) as cur:
            rebuilt = (cur.execute(SECONDARY_INDEXES_SQL, {"tables": list(tables)}).fetchall(),
                       cur.execute(FOREIGN_KEYS_SQL, {"tables": list(tables)}).fetchall())
    if rebuilt != (indexes, keys):
        raise RuntimeError(f"the schema of {tables} is not as migrated after the load")


def register_fleet(url: str, devices: int) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(REGISTER_FLEET_SQL, {"devices": devices})


def insert_job(url: str, job_id: uuid.UUID, name: str, status: str, devices: int) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(INSERT_JOB_SQL, {"job_id": job_id, "job_name": name, "status": status,
                                      "job_document": JOB_DOCUMENT, "devices": devices})


def vacuum_analyze(url: str) -> None:
    """Settle a freshly loaded database: statistics, visibility, and a checkpoint, so that the
    bulk load's dirty pages are not written out (and commits not stalled) while measuring."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE")
        conn.execute("CHECKPOINT")


@contextmanager
def gunicorn(database_url: str, port: int, **env: str) -> Iterator[str]:
    """The API under gunicorn with the deployed config; yields its base URL."""
    environment = {
        **os.environ, "DATABASE_URL": database_url, "ADMIN_TOKEN": ADMIN_TOKEN,
        "LOG_LEVEL": "WARNING", "MQTT_URL": "", **env,
    }
    argv = stack.gunicorn_command(f"127.0.0.1:{port}", None, None)
    process = subprocess.Popen(argv, env=environment, cwd=stack.PROJECT_DIR)
    base_url = f"http://127.0.0.1:{port}"
    try:
        _wait_until_up(base_url, process)
        _MASTERS[base_url] = process.pid
        yield base_url
    finally:
        _MASTERS.pop(base_url, None)
        process.terminate()
        process.wait(timeout=30)


def _wait_until_up(base_url: str, process: subprocess.Popen) -> None:
    deadline = time.monotonic() + SERVER_START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"gunicorn exited with {process.returncode}")
        try:
            with urllib.request.urlopen(f"{base_url}/healthz", timeout=1) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError("gunicorn did not come up")


def worker_memory_by_pid(base_url: str) -> dict[int, int]:
    """The anonymous resident memory (KiB) of each worker of the server at ``base_url``, by
    process id (a worker restarted has a new one): what the process allocated itself (the idle
    devices it knows among it), not shared code."""
    master = _MASTERS[base_url]
    children = Path(f"/proc/{master}/task/{master}/children").read_text().split()
    return {int(pid): anonymous_memory_kib(int(pid)) for pid in children}


def cpu_seconds_by_role(base_url: str | None = None) -> dict[str, float]:
    """CPU seconds used so far (user + system) by every PostgreSQL process of this machine and,
    given its URL, by the API's workers: read before and after a run, the difference is what
    the run cost each side. A backend that has exited is counted in its postmaster's reaped
    children's time."""
    postgres = [pid for pid in os.listdir("/proc") if pid.isdigit()
                and _process_name(pid) in ("postgres", "postmaster")]
    used = {"PostgreSQL": sum(_cpu_seconds(pid, reaped=True) for pid in postgres)}
    if base_url is not None:
        master = _MASTERS[base_url]
        workers = Path(f"/proc/{master}/task/{master}/children").read_text().split()
        used["API"] = sum(_cpu_seconds(pid) for pid in workers)
    return used


def _process_name(pid: str) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:  # gone meanwhile
        return ""


def _cpu_seconds(pid: str, reaped: bool = False) -> float:
    """utime + stime, and with ``reaped`` cutime + cstime (its children that have exited)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    ticks = sum(int(value) for value in fields[11:15 if reaped else 13])
    return ticks / os.sysconf("SC_CLK_TCK")


def anonymous_memory_kib(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(next(line.split()[1] for line in status.splitlines()
                    if line.startswith("RssAnon:")))


def write_device_list(devices: int, path: Path) -> None:
    """One ``uuid token`` line per device, for the wrk script."""
    with path.open("w") as out:
        for i in range(1, devices + 1):
            out.write(f"{device_uuid(i)} {device_token(i)}\n")


def require_wrk() -> None:
    """Install the load generator from the distribution's packages when it is missing (as
    ``deploy/services.sh`` installs the services); stop before any data is built when it
    cannot be."""
    if shutil.which("wrk") is not None:
        return
    root = [] if os.geteuid() == 0 else ["sudo", "-n"]
    if shutil.which("apt-get") is None or (root and shutil.which("sudo") is None):
        raise SystemExit("this benchmark loads the API with wrk: install it (apt-get install "
                         "wrk on Debian and Ubuntu)")
    print("installing wrk (apt-get install wrk)")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for command in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "wrk"]):
        if subprocess.run(root + command, env=env, stdout=subprocess.DEVNULL).returncode:
            raise SystemExit(f"could not install wrk ({' '.join(root + command)} failed): "
                             "install it by hand")
    if shutil.which("wrk") is None:
        raise SystemExit("wrk was installed but is not on PATH")


def wrk(base_url: str, path_kind: str, devices_file: Path | None, duration_s: int,
        connections: int, threads: int = 2, job_id: str = "") -> dict:
    """Run wrk for ``duration_s``; answer requests/s, p50/p99 in ms and the error count.

    ``path_kind`` is "healthz" (the trivial endpoint), "next" (a random device's poll) or
    "progress" (a random device's IN_PROGRESS report of ``job_id``).
    """
    argv = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{duration_s}s", "--timeout", "10s",
            "-s", str(WRK_SCRIPT), base_url, "--", path_kind, str(devices_file or "-"), job_id]
    output = subprocess.run(argv, check=True, capture_output=True, text=True).stdout
    line = next(x for x in output.splitlines() if x.startswith("RESULT "))
    result = json.loads(line.removeprefix("RESULT "))
    return {
        "rps": result["requests"] / (result["duration_us"] / 1e6),
        "p50_ms": result["p50_us"] / 1000,
        "p99_ms": result["p99_us"] / 1000,
        "errors": result["errors"],
        "requests": result["requests"],
    }


def temp_path(name: str) -> Path:
    return Path(tempfile.mkdtemp(prefix="device-jobs-bench-")) / name
