"""A device's poll for its next job: authentication and the lookup in one query, or an answer
from memory for a device this process knows idle.

The answer's shape is ``schemas.device_jobs.NextJob``: ``answer`` builds it from the row,
camelCase keys and all, without a schema dump on this hottest path of the product.
"""

from __future__ import annotations

import datetime
import uuid
from typing import NamedTuple

from psycopg.rows import args_row

from dispatcher.fleet.tokens import TokenVerdict
from dispatcher.poll import idle, sightings
from dispatcher.poll.connection import own_one
from schemas.device_jobs import NextJob

NO_PENDING_JOBS = "No pending jobs"


class PolledJob(NamedTuple):
    """A device's poll as ``poll_device_job`` answers it: its verdict on the token
    (``dispatcher.fleet.tokens.TokenVerdict``), then the job columns, None when the device has
    nothing to do."""

    device_uuid: uuid.UUID
    token_ok: bool
    token_kind: str | None
    job_id: uuid.UUID | None
    job_name: str | None
    job_document: dict | None
    queued_at: datetime.datetime | None
    execution_number: int | None
    version_number: int | None
    status: str | None
    job_document_signature: str | None
    signed_job: str | None
    parent_job_id: uuid.UUID | None
    has_pending: bool

    @property
    def verdict(self) -> TokenVerdict:
        return TokenVerdict(self.token_ok, self.token_kind)


_polled_job_row = args_row(PolledJob)
_NOTHING = dict.fromkeys(PolledJob._fields[3:-1])
# The answer's fields, each with its key: the schema's, so the shape is written once.
_SCHEMA_FIELDS = NextJob().fields
_ANSWER_KEYS = {name: field.data_key or name for name, field in _SCHEMA_FIELDS.items()
                if name in PolledJob._fields}
_POLL_AFTER_KEY = _SCHEMA_FIELDS["poll_after_seconds"].data_key or "poll_after_seconds"


def poll(device_uuid: uuid.UUID, token_hash: bytes | None, fresh: bool = False) -> PolledJob:
    """A device's poll: the token's verdict and the lookup of its next job in one query.

    ``token_ok`` False: ``token_hash`` is not the device's, or the device does not exist
    (``token_kind`` says what the token is instead). Else the device's next job (its
    IN_PROGRESS one, else its oldest released QUEUED one) with ``job_id`` None when there is
    none. ``token_hash`` None skips the token check.

    A device this process knows idle (``dispatcher.poll.idle``) is answered without a query,
    unless ``fresh`` asks for the database's answer.
    """
    if token_hash is not None and not fresh and known_idle(device_uuid, token_hash):
        return PolledJob(device_uuid, True, None, **_NOTHING, has_pending=False)
    known = idle.current()
    position = known.position
    polled = own_one(
        "poll_device_job", _polled_job_row, device_uuid=device_uuid, token_hash=token_hash
    )
    if polled.token_ok:
        sightings.of_this_process.note(device_uuid)
        if token_hash is not None and polled.has_pending:
            known.learn_token(device_uuid, token_hash, position)
        elif token_hash is not None:
            known.learn_idle(device_uuid, token_hash, position)
    return polled


def known_idle(device_uuid: uuid.UUID, token_hash: bytes) -> bool:
    """Whether this process knows the device idle and the token its own: then its poll is
    answered "no pending jobs" without a query, and the device was heard from."""
    if not idle.current().is_idle(device_uuid, token_hash):
        return False
    sightings.of_this_process.note(device_uuid)
    return True


def no_job_answer(poll_after_s: int) -> dict:
    """The answer to a device with nothing to do (``schemas.device_jobs.NextJob``)."""
    return {"message": NO_PENDING_JOBS, _POLL_AFTER_KEY: poll_after_s}


def answer(polled: PolledJob, poll_after_s: int) -> dict:
    """The poll answer (``schemas.device_jobs.NextJob``), ready for ``json.dumps``."""
    if polled.job_id is None:
        return no_job_answer(poll_after_s)
    body: dict[str, object] = {
        key: _plain(getattr(polled, name)) for name, key in _ANSWER_KEYS.items()
    }
    body[_POLL_AFTER_KEY] = poll_after_s
    return body


def _plain(value: object) -> object:
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, datetime.datetime):
        return value.isoformat()
    return value
