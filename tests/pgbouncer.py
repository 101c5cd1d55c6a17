"""PgBouncer in transaction pooling in front of the shared PostgreSQL, on a free port.

PgBouncer (installed by ``deploy/scale-out-services.sh``) runs from a temporary directory as the
``postgres`` user when the tests run as root (it refuses to run as root). Every database of the
server is reachable through it under its own name; each (database, user) pair gets at most
``pool_size`` server connections, however many clients connect.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import psycopg

PGBOUNCER = shutil.which("pgbouncer") or "/usr/sbin/pgbouncer"
START_TIMEOUT_S = 10.0

CONFIG = """\
[databases]
* = host={pg_host} port={pg_port}

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {port}
unix_socket_dir =
auth_type = trust
auth_file = {run}/users.txt
pool_mode = transaction
default_pool_size = {pool_size}
min_pool_size = 0
max_client_conn = {max_clients}
max_db_connections = {pool_size}
logfile = {run}/pgbouncer.log
pidfile = {run}/pgbouncer.pid
admin_users = postgres
ignore_startup_parameters = extra_float_digits,options
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class PgBouncer:
    """A running PgBouncer: ``url(database)`` connects through it."""

    def __init__(self, pool_size: int, pg_host: str = "127.0.0.1", pg_port: int = 5432,
                 max_clients: int = 2000) -> None:
        if not Path(PGBOUNCER).exists():
            raise RuntimeError("PgBouncer is not installed: run deploy/scale-out-services.sh")
        self.port = free_port()
        self.run = Path(tempfile.mkdtemp(prefix="dj-pgbouncer-"))
        (self.run / "users.txt").write_text('"postgres" ""\n')
        (self.run / "pgbouncer.ini").write_text(CONFIG.format(
            pg_host=pg_host, pg_port=pg_port, port=self.port, run=self.run, pool_size=pool_size,
            max_clients=max_clients))
        argv = [PGBOUNCER, str(self.run / "pgbouncer.ini")]
        if os.geteuid() == 0:
            user = pwd.getpwnam("postgres")
            for path in (self.run, *self.run.iterdir()):
                os.chown(path, user.pw_uid, user.pw_gid)
            argv[1:1] = ["-u", "postgres"]
        self.process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        self._wait_until_up()

    def url(self, database: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def _wait_until_up(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"pgbouncer exited: {self.process.stderr.read()!r}")
            try:
                with psycopg.connect(self.url("postgres"), autocommit=True,
                                     prepare_threshold=None, connect_timeout=1) as conn:
                    conn.execute("SELECT 1")
                return
            except psycopg.OperationalError:
                time.sleep(0.1)
        raise RuntimeError("pgbouncer did not come up")

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)
        shutil.rmtree(self.run, ignore_errors=True)
