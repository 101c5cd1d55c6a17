"""The devices with nothing to poll for, known in each API process: most polls need no query.

At any moment most of a fleet has no pending job (no QUEUED or IN_PROGRESS row), and its polls
all get the same answer. A listener thread per process keeps, in memory, every device with its
token hash and whether it is idle: it LISTENs on ``idle_devices`` (see the migrations), loads every
device, and then forgets each device a notification names, a device that may have got a
pending row or whose token changed or that was deleted. A poll from a device known idle, with
its token, is answered "no pending jobs" without a query; every other poll queries, and a device
the query finds idle is known idle again, unless a notification about it was handled while the
query ran. The same knowledge is this process's one cache of verified device tokens: the status
report reads its body only for a token known here (or checked by one query), and every
statement that checks a device's token teaches it here under the same rule.

Why this never hides a job from the poll after the notification is handled: a notification
arrives after its transaction commits. A poll takes the position (notifications handled so
far) before its query. Any change the query did not see committed after the query started, so
its notification is handled after the position was taken: it forgets the device, and the poll's
"idle" cannot be learned over it. Losing the listener connection forgets everything and turns
the knowledge off until a new connection has listened and loaded it again.

The load reads the devices in pages (``SNAPSHOT_PAGE_ROWS``) through one server-side cursor,
in one transaction begun after LISTEN. A cursor reads the snapshot its DECLARE took however
many FETCHes it takes (PostgreSQL's cursors are insensitive), so the pages are one snapshot as
the one query before them was, and a change it did not see committed after the DECLARE, so
after the LISTEN: its notification is held for this connection while the transaction lasts,
delivered as it ends (before its COMMIT is answered) and handled before the knowledge answers
anything. A page is a few milliseconds of this thread's work between two waits on the socket,
so the process's other threads (requests, gunicorn's heartbeat) run while a million devices
load, where one fetch of them all held them for seconds; and only a page of rows is ever held
besides the maps, so what stays after the load is what the maps need.

The gap left is the time from a commit to its notification being handled here (well under a
millisecond when idle). The MQTT nudge is published after the commit and can beat it, so the
agent asks for a fresh answer (``Cache-Control: no-cache``) on a nudged poll; a poll that is
not fresh gets the job one poll interval later at worst.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Iterable

import psycopg

from dispatcher import db
from dispatcher.db import QUERIES
from dispatcher.db_limits import BoundedConnection

log = logging.getLogger(__name__)

RECONNECT_DELAY_S = 1.0
# The listener checks its connection this often: a connection lost silently is found lost
# (and the knowledge dropped) within about this long plus DB_QUERY_TIMEOUT_S, the limit on the
# check's answer (dispatcher.db_limits).
LIVENESS_CHECK_S = 2.0
LISTENER_NAME = "device-jobs idle devices"
# Devices forgotten since the last reset; past this many, the record starts over (and polls
# still querying do not learn, which is always safe).
FORGOTTEN_MAX = 100_000
# Rows a FETCH of the load reads: a few milliseconds of this thread's work each.
SNAPSHOT_PAGE_ROWS = 5_000


class IdleDevices:
    """The one place that knows which device tokens this process has verified, and which of
    those devices are idle: device (uuid bytes) -> token hash, in ``_idle`` or in ``_busy``
    (never both). Bytes only, no tuple per device: about 200 bytes a device (at a million),
    and maps that the garbage collector never has to walk.

    A token is learnt from a statement that checked it (the poll's, the status report's, the
    report's check before its body is read) or from the listener's load. With a listener
    (``database_url`` given) the knowledge is exact: kept by the listener thread, learnt only
    under the position rule above, forgotten with every notification. The process without one
    (``database_url`` None) only remembers tokens, never answers a device idle, and may keep a
    rotated token: that only lets a report's body be read, since its statement checks again.
    """

    def __init__(self, database_url: str | None) -> None:
        self.database_url = database_url
        self._lock = threading.Lock()
        self._idle: dict[bytes, bytes] = {}
        self._busy: dict[bytes, bytes] = {}
        self._enabled = False
        self._position = 0
        self._valid_since = 1
        self._forgotten_at: dict[bytes, int] = {}
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._listen, name="idle-devices", daemon=True)

    # The side of the poll and the status report.

    def is_idle(self, device_uuid: uuid.UUID, token_hash: bytes) -> bool:
        """Whether this device is known to have nothing pending and ``token_hash`` is its token."""
        return self._enabled and self._idle.get(device_uuid.bytes) == token_hash

    def knows_token(self, device_uuid: uuid.UUID, token_hash: bytes) -> bool:
        """Whether ``token_hash`` is this device's token as last verified."""
        key = device_uuid.bytes
        # A device moving between the maps is put in the other before it leaves the one.
        return self._idle.get(key) == token_hash or self._busy.get(key) == token_hash

    @property
    def position(self) -> int:
        """Take it before a statement that checks a token; hand it to ``learn_*`` after."""
        return self._position

    def learn_idle(self, device_uuid: uuid.UUID, token_hash: bytes, position: int) -> None:
        """A query that started after ``position`` was taken found the device idle, with this
        token."""
        self._learn(device_uuid.bytes, token_hash, True, position)

    def learn_token(self, device_uuid: uuid.UUID, token_hash: bytes, position: int) -> None:
        """A statement that started after ``position`` was taken found ``token_hash`` to be
        the device's token (whether it is idle is not known: an idle device stays so)."""
        if not self.knows_token(device_uuid, token_hash):
            self._learn(device_uuid.bytes, token_hash, False, position)

    def _learn(self, key: bytes, token_hash: bytes, idle: bool, position: int) -> None:
        with self._lock:
            if self.database_url is None or (
                    self._enabled and position >= self._valid_since
                    and self._forgotten_at.get(key, 0) <= position):
                into, out_of = (self._idle, self._busy) if idle else (self._busy, self._idle)
                into[key] = token_hash
                out_of.pop(key, None)

    # The listener's side.

    @property
    def enabled(self) -> bool:
        return self._enabled

    def start(self) -> IdleDevices:
        self._thread.start()
        return self

    def stop(self) -> None:
        """Drop the knowledge now; the thread ends within ``LIVENESS_CHECK_S``."""
        self._stopped.set()
        self.drop()

    def forget(self, keys: Iterable[bytes]) -> None:
        with self._lock:
            self._position += 1
            if len(self._forgotten_at) > FORGOTTEN_MAX:
                self._forgotten_at = {}
                self._valid_since = self._position
            for key in keys:
                self._idle.pop(key, None)
                self._busy.pop(key, None)
                self._forgotten_at[key] = self._position

    def drop(self) -> None:
        """Forget everything and answer no poll until loaded again."""
        with self._lock:
            self._enabled = False
            self._idle, self._busy = {}, {}
            self._forgotten_at = {}
            self._position += 1

    def _load(self, idle: dict[bytes, bytes], busy: dict[bytes, bytes]) -> None:
        """Devices (uuid bytes) with their token hashes: the ``idle`` ones and the others."""
        with self._lock:
            self._idle, self._busy = idle, busy
            self._forgotten_at = {}
            self._position += 1
            self._valid_since = self._position

    def _listen(self) -> None:
        database_url = self.database_url
        assert database_url is not None, "a listener needs its database"
        # Logged once per outage: the reconnection attempts that fail after it are not news.
        lost_logged = False
        while not self._stopped.is_set():
            try:
                with BoundedConnection.connect(database_url, autocommit=True,
                                               application_name=LISTENER_NAME,
                                               **db.connect_options()) as conn:
                    lost_logged = False
                    self._follow(conn)
            except Exception as exc:  # any failure: drop the knowledge, connect again
                log.log(logging.DEBUG if lost_logged else logging.WARNING,
                        "idle devices listener lost error=%s", exc)
                lost_logged = True
            finally:
                self.drop()
            self._stopped.wait(RECONNECT_DELAY_S)

    def _follow(self, conn: psycopg.Connection) -> None:
        conn.execute(QUERIES["listen_idle_devices"])
        idle, busy = self._read_snapshot(conn)
        self._load(idle, busy)
        # Changes committed while loading are forgotten before the first answer.
        self._handle(conn.notifies(timeout=0))
        with self._lock:
            self._enabled = not self._stopped.is_set()
        log.info("idle devices known devices=%d idle=%d", len(idle) + len(busy), len(idle))
        while not self._stopped.is_set():
            self._handle(conn.notifies(timeout=LIVENESS_CHECK_S))
            conn.execute(QUERIES["idle_devices_listener_alive"])

    def _read_snapshot(self, conn: psycopg.Connection) -> tuple[dict[bytes, bytes],
                                                              dict[bytes, bytes]]:
        """Every device's token hash, the idle devices' and the others', read page by page
        from one snapshot (see the module's docstring)."""
        idle: dict[bytes, bytes] = {}
        busy: dict[bytes, bytes] = {}
        with conn.transaction(), conn.cursor("known_devices", binary=True) as cursor:
            cursor.execute(QUERIES["known_devices_snapshot"])
            while page := cursor.fetchmany(SNAPSHOT_PAGE_ROWS):
                for key, token_hash, is_idle in page:
                    (idle if is_idle else busy)[key] = token_hash
                if self._stopped.is_set():
                    break
        return idle, busy

    def _handle(self, notifications: Iterable[psycopg.Notify]) -> None:
        for note in notifications:
            self.forget(uuid.UUID(text).bytes for text in note.payload.split(","))


# A process that starts no listener (a test's app, a command) still remembers tokens.
_current = IdleDevices(None)


def start(database_url: str) -> IdleDevices:
    """Start this process's listener (an API worker calls it once after it boots)."""
    global _current
    stop()
    _current = IdleDevices(database_url).start()
    return _current


def current() -> IdleDevices:
    return _current


def stop() -> None:
    global _current
    if _current.database_url is not None:
        _current.stop()
        _current = IdleDevices(None)
