"""Portal sign-ins, kept in PostgreSQL so that the server can end them.

Signing in with an admin or viewer token starts a session: a random secret for the browser's
cookie, of which only the SHA-256 is stored. Nothing in the table signs anyone in (the cookie's
secret is not in it, nor any token's hash), and a session ends for every copy of its cookie
when its user signs out, its token is revoked, ``ADMIN_TOKEN`` changes (for sessions signed in
with it), or it goes unused for ``SESSION_IDLE_S``.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

from dispatcher import db
from dispatcher.fleet.tokens import BOOTSTRAP_TOKEN_NAME, Principal, hash_token

SESSION_IDLE_S = 12 * 3600
# last_seen_at is written at most this often per session: a page's fragments polling every
# few seconds cost one UPDATE a minute.
TOUCH_EVERY_S = 60
BOOTSTRAP_LABEL = b"device-jobs portal session of the bootstrap ADMIN_TOKEN"


def bootstrap_fingerprint(admin_token: str) -> bytes:
    """What a session signed in with ``ADMIN_TOKEN`` keeps of it: an HMAC under a label of its
    own, so it is neither the token nor anything derived from it elsewhere."""
    return hmac.new(admin_token.encode(), BOOTSTRAP_LABEL, hashlib.sha256).digest()


def start_session(token: str, bootstrap_admin_token: str = "") -> tuple[str, Principal] | None:
    """A new session's secret and who it is, for an admin or viewer ``token``; None when the
    token is not one."""
    secret = secrets.token_urlsafe(32)
    secret_hash = hash_token(secret)
    db.execute("delete_idle_portal_sessions", idle_s=SESSION_IDLE_S)
    if bootstrap_admin_token and hmac.compare_digest(token.encode(),
                                                     bootstrap_admin_token.encode()):
        db.execute("insert_bootstrap_portal_session", secret_hash=secret_hash,
                   bootstrap_fingerprint=bootstrap_fingerprint(bootstrap_admin_token))
        return secret, Principal(kind="admin", name=BOOTSTRAP_TOKEN_NAME)
    row = db.one("insert_portal_session", secret_hash=secret_hash, token_hash=hash_token(token))
    if row is None:
        return None
    return secret, Principal(kind=row["role"], name=row["name"])


def session_principal(secret: str, bootstrap_admin_token: str = "") -> Principal | None:
    """Who the live session with ``secret`` is; None when there is no such session."""
    secret_hash = hash_token(secret)
    row = db.one("find_portal_session", secret_hash=secret_hash, idle_s=SESSION_IDLE_S,
                 touch_every_s=TOUCH_EVERY_S)
    if row is None:
        return None
    if row["api_token_id"] is not None:
        principal = Principal(kind=row["role"], name=row["name"])
    elif bootstrap_admin_token and hmac.compare_digest(
            bytes(row["bootstrap_fingerprint"]), bootstrap_fingerprint(bootstrap_admin_token)):
        principal = Principal(kind="admin", name=BOOTSTRAP_TOKEN_NAME)
    else:
        return None
    if row["stale"]:
        db.execute("touch_portal_session", secret_hash=secret_hash)
    return principal


def end_session(secret: str) -> None:
    db.execute("delete_portal_session", secret_hash=hash_token(secret))
