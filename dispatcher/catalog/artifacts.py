"""Artifacts: files uploaded once and delivered to the devices whose jobs name them.

An upload is streamed into the artifact storage while it is hashed
(``dispatcher.catalog.artifact_storage``), then recorded; the same name with the same content
is the artifact already stored. A ``download-file`` step refers to one as ``artifact:NAME`` or
``artifact:ID``; ``pin_artifacts`` fixes the reference at execute (``schemas.artifacts``), so
the execution keeps its artifact when the name is uploaded again, and its signature covers
what the device will accept. A device may download an artifact only while one of its own
unfinished executions pinned it; an artifact a live execution pinned cannot be deleted.
"""

from __future__ import annotations

import copy
import logging
import uuid
from typing import IO

from dispatcher import audit, db
from dispatcher.catalog.artifact_storage import ArtifactStorage
from dispatcher.errors import Conflict, DispatcherError, InvalidInput, NotFound
from schemas.artifacts import DOWNLOAD_HANDLER, artifact_reference
from schemas.handlers import handler_names
from schemas.job_document import RUN_HANDLER
from schemas.vocabulary import LIVE_JOB, PENDING

log = logging.getLogger(__name__)

DEFAULT_CONTENT_TYPE = "application/octet-stream"


class ChecksumMismatch(DispatcherError):
    http_status = 422


def _not_found(artifact_id: object) -> NotFound:
    return NotFound(f"Artifact {artifact_id} not found")


def store_artifact(
    storage: ArtifactStorage, name: str, stream: IO[bytes], content_type: str | None,
    expected_sha256: str | None, max_bytes: int, actor: str,
) -> tuple[dict, bool]:
    """Store an upload under ``name``: (the artifact, whether it is new). The same name with
    the same content answers the artifact already stored. ChecksumMismatch when
    ``expected_sha256`` is given and the content is another; TooLarge past ``max_bytes``."""
    stored = storage.put(stream, max_bytes)
    if expected_sha256 and expected_sha256.lower() != stored.sha256:
        if not db.row("artifact_kept", sha256=stored.sha256)["kept"]:
            storage.delete(stored.key)
        raise ChecksumMismatch(
            f"Uploaded content has sha256 {stored.sha256}, not {expected_sha256.lower()}",
            errors={"sha256": ["Does not match the uploaded content."]})
    with db.transaction() as c:
        artifact = c.one(
            "insert_artifact", id=uuid.uuid4(), name=name, size=stored.size,
            sha256=stored.sha256, content_type=content_type or DEFAULT_CONTENT_TYPE,
            storage_key=stored.key, created_by=actor)
        if artifact is None:
            return c.row("get_artifact_by_content", name=name, sha256=stored.sha256), False
        audit.record_event(c, actor, "artifact.uploaded", "artifact", artifact["id"],
                           details={"name": name, "sha256": stored.sha256,
                                    "size": stored.size})
    log.info("artifact stored artifact_id=%s name=%s size=%d sha256=%s",
             artifact["id"], name, stored.size, stored.sha256)
    return {**artifact, "used_by": []}, True


def _parse_id(artifact_id: str) -> uuid.UUID:
    try:
        return uuid.UUID(str(artifact_id))
    except ValueError:
        raise _not_found(artifact_id) from None


def get_artifact(artifact_id: str) -> dict:
    artifact = db.one("get_artifact", id=_parse_id(artifact_id))
    if artifact is None:
        raise _not_found(artifact_id)
    return artifact


def list_artifacts(limit: int, offset: int) -> dict:
    """A page of artifacts, newest first, each with the live executions that pinned it."""
    rows = db.all("list_artifacts", limit=limit, offset=offset, live=list(LIVE_JOB))
    total = db.row("count_artifacts")["n"]
    return {"artifacts": rows, "total": total, "limit": limit, "offset": offset}


def delete_artifact(storage: ArtifactStorage, artifact_id: str, actor: str) -> dict:
    """Delete an artifact (Conflict while a live execution pinned it); its content goes from
    the storage when no other artifact holds it. Answers the artifact as it was."""
    key = _parse_id(artifact_id)
    with db.transaction() as c:
        artifact = c.one("lock_artifact", id=key)
        if artifact is None:
            raise _not_found(artifact_id)
        live = [row["job_id"] for row in c.all("artifact_live_jobs", id=key,
                                               live=list(LIVE_JOB))]
        if live:
            raise Conflict(f"Artifact {artifact['name']} is used by {len(live)} live "
                           "execution(s); cancel them or wait until they end",
                           errors={"used_by": [str(job_id) for job_id in live]})
        content_kept = c.row("delete_artifact", id=key)["content_kept"]
        audit.record_event(c, actor, "artifact.deleted", "artifact", key,
                           details={"name": artifact["name"], "sha256": artifact["sha256"],
                                    "size": artifact["size"]})
    if not content_kept:
        storage.delete(artifact["storage_key"])
    return {**artifact, "used_by": []}


def get_device_artifact(device_uuid: uuid.UUID, artifact_id: str) -> dict:
    """An artifact for a device, only while one of its unfinished executions pinned it;
    NotFound otherwise (a device does not learn which artifacts exist)."""
    artifact = db.one("get_device_artifact", id=_parse_id(artifact_id), device_uuid=device_uuid,
                      pending=list(PENDING))
    if artifact is None:
        raise _not_found(artifact_id)
    return artifact


def _download_steps(document: dict) -> list[dict]:
    steps = [*document["steps"], *([document["finalStep"]] if "finalStep" in document else [])]
    return [step for step in steps if step["type"] == RUN_HANDLER
            and DOWNLOAD_HANDLER in handler_names(step["input"]["handler"])]


def pin_artifacts(c: db.Connector, document: dict) -> tuple[dict, list[uuid.UUID]]:
    """``document`` (canonical, handlers pinned) with each ``artifact:`` reference of its
    download steps fixed to the artifact it names now, and the artifacts pinned.
    InvalidInput naming the step when a reference names no artifact."""
    pinned = copy.deepcopy(document)
    steps = _download_steps(pinned)
    for step in steps:
        # Pins are the server's to write: whatever the author wrote in their place goes.
        step["input"].pop("artifact", None)
    wanted = [(step, reference) for step in steps if step["input"]["args"]
              and (reference := artifact_reference(step["input"]["args"][0])) is not None]
    if not wanted:
        return pinned, []
    references = sorted({reference for _, reference in wanted})
    found = {row["reference"]: row for row in c.all("resolve_artifacts", references=references)}
    missing = [f"step {step['name']!r}: no artifact {reference!r}"
               for step, reference in wanted if reference not in found]
    if missing:
        raise InvalidInput("Job document names artifacts that do not exist",
                           errors={"job_document": missing})
    for step, reference in wanted:
        artifact = found[reference]
        args = step["input"]["args"]
        args[0] = f"artifact:{artifact['id']}"
        if len(args) >= 2:
            # The handler's own SHA256 argument says the same as the pin.
            args[2:] = [artifact["sha256"]]
        step["input"]["artifact"] = {"id": str(artifact["id"]), "name": artifact["name"],
                                     "sha256": artifact["sha256"], "size": artifact["size"]}
    return pinned, sorted({found[reference]["id"] for _, reference in wanted})
