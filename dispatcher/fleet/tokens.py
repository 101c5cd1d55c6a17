"""Admin, viewer and device bearer tokens. Only SHA-256 hashes are ever stored."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
import uuid
from dataclasses import dataclass
from typing import NamedTuple

from psycopg.rows import args_row

from dispatcher import db
from dispatcher.errors import NotFound
from dispatcher.poll import idle
from dispatcher.poll.connection import own_one

BOOTSTRAP_TOKEN_NAME = "bootstrap (ADMIN_TOKEN)"
# api_tokens.last_used_at is written at most this often per token, so a busy token costs one
# UPDATE a minute, not one per request.
LAST_USED_EVERY_S = 60
# token hash -> monotonic time this process last wrote its last_used_at. Any thread may use it:
# at worst two threads both write, and the statement itself skips a write made meanwhile.
_last_used_written: dict[bytes, float] = {}


@dataclass(frozen=True)
class Principal:
    """Who a request acts as: an admin/viewer token, or one device."""

    kind: str  # "admin", "viewer" or "device"
    name: str
    device_uuid: uuid.UUID | None = None


def new_token() -> str:
    """A random token that never begins with '-', so that it can follow an option on a
    command line (``jobs-agent enroll --enrollment-token T``) without being taken for one."""
    while (token := secrets.token_urlsafe(32)).startswith("-"):
        pass
    return token


def hash_token(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def create_api_token(role: str, name: str, created_by: str | None = None) -> tuple[str, dict]:
    """Create a token; return the plain token (shown once) and its record."""
    token = new_token()
    record = db.one(
        "insert_api_token", name=name, role=role, token_hash=hash_token(token),
        created_by=created_by,
    )
    assert record is not None
    return token, record


def list_api_tokens() -> list[dict]:
    return db.all("list_api_tokens")


def revoke_api_token(token_id: int) -> dict:
    record = db.one("revoke_api_token", id=token_id)
    if record is None:
        raise NotFound(f"token {token_id} not found")
    return record


def authenticate(token: str, bootstrap_admin_token: str = "") -> Principal | None:
    """The principal a bearer token stands for, or None when it is unknown or revoked.

    ``bootstrap_admin_token`` (the ``ADMIN_TOKEN`` setting) is an admin token that needs no row.
    """
    return authenticate_bootstrap(token, bootstrap_admin_token) or _principal(hash_token(token))


def authenticate_bootstrap(token: str, bootstrap_admin_token: str) -> Principal | None:
    """The bootstrap admin when ``token`` is the ``ADMIN_TOKEN`` setting, which has no row."""
    # Compared as bytes: compare_digest refuses str with non-ASCII characters.
    if bootstrap_admin_token and hmac.compare_digest(token.encode(),
                                                     bootstrap_admin_token.encode()):
        return Principal(kind="admin", name=BOOTSTRAP_TOKEN_NAME)
    return None


class TokenVerdict(NamedTuple):
    """What a device endpoint's statement found of its bearer token.

    ``token_ok``: the device exists and the token is its own (or no token was checked).
    Otherwise ``token_kind`` is what the token is instead: "device" (another device's),
    "admin" or "viewer"; None when it is unknown or revoked.
    """

    token_ok: bool
    token_kind: str | None = None


_token_verdict_row = args_row(TokenVerdict)


def verify_device_token(device_uuid: uuid.UUID, token_hash: bytes) -> TokenVerdict:
    """Whether ``token_hash`` is this device's own token, for the status report, whose body is
    read only after it: a token this process has verified (``dispatcher.poll.idle``) is taken
    as it is (the report's statement checks it again); another costs one prepared lookup on the
    thread's own connection, and is remembered when it is the device's."""
    known = idle.current()
    if known.knows_token(device_uuid, token_hash):
        return TokenVerdict(True)
    position = known.position
    verdict: TokenVerdict = own_one("device_token_verdict", _token_verdict_row,
                                    device_uuid=device_uuid, token_hash=token_hash)
    if verdict.token_ok:
        known.learn_token(device_uuid, token_hash, position)
    return verdict


def _principal(token_hash: bytes) -> Principal | None:
    row = db.one("find_principal", token_hash=token_hash)
    if row is None:
        return None
    if row["kind"] != "device":
        _note_use(token_hash)
    return Principal(kind=row["kind"], name=row["name"], device_uuid=row["device_uuid"])


def _note_use(token_hash: bytes) -> None:
    now = time.monotonic()
    if now - _last_used_written.get(token_hash, -LAST_USED_EVERY_S) < LAST_USED_EVERY_S:
        return
    if len(_last_used_written) > 10_000:
        _last_used_written.clear()
    _last_used_written[token_hash] = now
    db.execute("touch_api_token", token_hash=token_hash, every_s=LAST_USED_EVERY_S)
