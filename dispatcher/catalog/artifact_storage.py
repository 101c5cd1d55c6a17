"""Where artifacts' bytes live: a local directory, or an S3-compatible bucket.

Both store an upload while hashing it, a chunk at a time (never the whole file in memory), under
its sha256: the same content uploaded under several names is stored once. Devices never talk to
the storage: the API reads from it and streams to them, so no device holds a storage
credential and no device token ever reaches the storage host.

- ``LocalStorage`` (``ARTIFACT_DIR``, the default): the upload goes to a temporary file in
  ``incoming/``, is fsynced and renamed into ``objects/<2 hex>/<sha256>``; the API serves it
  with ``sendfile``. One directory: right for one API host, or a shared mount. A body the
  server can hand over as its socket (``SocketBody``) is moved into the file by ``os.splice``
  while a second thread hashes what has been written: the bytes never pass through Python
  objects, and the copy and the hash run side by side (a third of the time of reading, hashing
  and writing each chunk in turn).
- ``S3Storage`` (``ARTIFACT_STORAGE=s3``, ``ARTIFACT_S3_BUCKET``, optional
  ``ARTIFACT_S3_ENDPOINT_URL``; credentials as boto3 finds them): for several API hosts. The
  upload goes up as a multipart upload under ``incoming/``, then is copied to
  ``objects/<sha256>``; reads ask the bucket for the byte range a device asked for.
"""

from __future__ import annotations

import ctypes
import hashlib
import mmap
import os
import tempfile
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Protocol, runtime_checkable

from dispatcher.config import Settings
from dispatcher.errors import DispatcherError, Misconfigured, Unavailable

CHUNK_BYTES = 1024 * 1024
# How much of an upload is written before its writeback to disk is started.
WRITEBACK_STEP_BYTES = 32 * 1024 * 1024
SYNC_FILE_RANGE_WRITE = 2
# S3 wants every part but the last to be at least 5 MiB.
S3_PART_BYTES = 8 * 1024 * 1024


class TooLarge(DispatcherError):
    http_status = 413


@dataclass(frozen=True)
class StoredObject:
    key: str
    sha256: str
    size: int


class ArtifactStorage(Protocol):
    def put(self, stream: IO[bytes], max_bytes: int) -> StoredObject:
        """Store what ``stream`` holds (TooLarge past ``max_bytes``) under its sha256."""

    def delete(self, key: str) -> None: ...

    def local_path(self, key: str) -> Path | None:
        """The object as a file this process can ``sendfile``; None when it is not one."""

    def read_range(self, key: str, start: int, end: int) -> Iterator[bytes]:
        """Bytes ``start`` to ``end`` (inclusive) of the object, a chunk at a time."""


@runtime_checkable
class SocketBody(Protocol):
    """A request body of declared length that its server lets the storage take from the socket
    itself. Read like any stream, or moved into a file by ``splice_into``."""

    def read(self, size: int = -1) -> bytes: ...

    def splice_into(self, descriptor: int) -> Iterator[int]:
        """Append the whole body to the file ``descriptor``, answering how many bytes each step
        wrote, as it goes."""


def _too_large(max_bytes: int) -> TooLarge:
    return TooLarge(f"Artifact larger than ARTIFACT_MAX_BYTES ({max_bytes} bytes)")


def _chunks(stream: IO[bytes], max_bytes: int, size: int = CHUNK_BYTES) -> Iterator[bytes]:
    total = 0
    while chunk := stream.read(size):
        total += len(chunk)
        if total > max_bytes:
            raise _too_large(max_bytes)
        yield chunk


def _fsync_dir(path: Path) -> None:
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _sync_file_range() -> Any:
    """libc's ``sync_file_range`` (Linux; None elsewhere): it starts writing a range of a file
    back to disk without waiting. Python's ``os`` lacks it."""
    try:
        function = ctypes.CDLL(None, use_errno=True).sync_file_range
    except (OSError, AttributeError):
        return None
    function.argtypes = [ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint]
    return function


_START_WRITEBACK = _sync_file_range()


class _Writeback:
    """Starts the writeback of an upload every ``WRITEBACK_STEP_BYTES`` as it is written, so
    the disk works while the bytes still arrive and the fsync at the end has little left to wait
    for (without it, a 1 GB upload waited half a second for its fsync). Best effort: the fsync is
    what makes the file durable."""

    def __init__(self, descriptor: int, flush: Callable[[], object] = lambda: None) -> None:
        """``flush`` hands what a buffered writer holds to the file first."""
        self.descriptor, self.flush, self.started = descriptor, flush, 0

    def written(self, size: int) -> None:
        if _START_WRITEBACK is not None and size - self.started >= WRITEBACK_STEP_BYTES:
            self.flush()
            _START_WRITEBACK(self.descriptor, self.started, size - self.started,
                             SYNC_FILE_RANGE_WRITE)
            self.started = size


class _Written:
    """How far the file has been written, for the thread hashing behind the writer."""

    def __init__(self) -> None:
        self._changed = threading.Condition()
        self.size, self.ended = 0, False

    def advance(self, count: int) -> None:
        with self._changed:
            self.size += count
            self._changed.notify()

    def end(self) -> None:
        with self._changed:
            self.ended = True
            self._changed.notify()

    def wait_past(self, position: int) -> tuple[int, bool]:
        """(size written, whether the writing ended) once the size is a chunk past
        ``position`` or the writing ended."""
        with self._changed:
            while self.size - position < CHUNK_BYTES and not self.ended:
                self._changed.wait()
            return self.size, self.ended


def _hash_behind(path: Path, written: _Written, digest: Any) -> None:
    """Hash the file as it is written, whole chunks at a time straight from the page cache
    (mapped, not copied; hashlib lets go of the GIL, so this runs beside the writer on another
    core)."""
    position = 0
    with open(path, "rb") as file:
        while True:
            size, ended = written.wait_past(position)
            upto = size if ended else position + (size - position) // CHUNK_BYTES * CHUNK_BYTES
            if upto > position:
                with mmap.mmap(file.fileno(), upto - position, access=mmap.ACCESS_READ,
                               offset=position) as mapped:
                    digest.update(mapped)
                position = upto
            if ended:
                return


def _splice_hashing(body: SocketBody, descriptor: int, path: Path, digest: Any) -> int:
    """Move ``body`` into the file, hashing behind; answer its size once both are done."""
    written, failure, writeback = _Written(), [], _Writeback(descriptor)

    def hash_behind() -> None:
        try:
            _hash_behind(path, written, digest)
        except BaseException as exc:
            failure.append(exc)

    hasher = threading.Thread(target=hash_behind, name="artifact-hash", daemon=True)
    hasher.start()
    try:
        for count in body.splice_into(descriptor):
            written.advance(count)
            writeback.written(written.size)
    finally:
        written.end()
        hasher.join()
    if failure:
        raise failure[0]
    return written.size


class LocalStorage:
    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def _path(self, key: str) -> Path:
        return self.directory / "objects" / key[:2] / key

    def put(self, stream: IO[bytes], max_bytes: int) -> StoredObject:
        incoming = self.directory / "incoming"
        incoming.mkdir(parents=True, exist_ok=True)
        digest, size = hashlib.sha256(), 0
        descriptor, temporary = tempfile.mkstemp(dir=incoming, prefix="upload-")
        try:
            with os.fdopen(descriptor, "wb") as file:
                if isinstance(stream, SocketBody):
                    size = _splice_hashing(stream, file.fileno(), Path(temporary), digest)
                else:
                    writeback = _Writeback(file.fileno(), file.flush)
                    for chunk in _chunks(stream, max_bytes):
                        digest.update(chunk)
                        size += len(chunk)
                        file.write(chunk)
                        writeback.written(size)
                    file.flush()
                os.fsync(file.fileno())
            key = digest.hexdigest()
            final = self._path(key)
            final.parent.mkdir(parents=True, exist_ok=True)
            if final.exists():
                os.unlink(temporary)  # stored once
            else:
                os.chmod(temporary, 0o644)
                os.replace(temporary, final)
                _fsync_dir(final.parent)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
        return StoredObject(key, key, size)

    def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)

    def local_path(self, key: str) -> Path | None:
        return self._path(key)

    def read_range(self, key: str, start: int, end: int) -> Iterator[bytes]:
        with open(self._path(key), "rb") as file:
            file.seek(start)
            left = end - start + 1
            while left > 0 and (chunk := file.read(min(CHUNK_BYTES, left))):
                left -= len(chunk)
                yield chunk


class S3Storage:
    def __init__(self, bucket: str, endpoint_url: str = "", client: Any = None) -> None:
        import boto3  # the "s3" extra: only a server that stores in S3 needs it

        self.bucket = bucket
        self.client = client or boto3.client("s3", endpoint_url=endpoint_url or None)

    def _errors(self) -> tuple[type[BaseException], ...]:
        import botocore.exceptions

        return (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError)

    def put(self, stream: IO[bytes], max_bytes: int) -> StoredObject:
        incoming = f"incoming/{uuid.uuid4()}"
        digest, size, parts = hashlib.sha256(), 0, []
        try:
            upload = self.client.create_multipart_upload(Bucket=self.bucket, Key=incoming)
        except self._errors() as exc:
            raise Unavailable(f"Artifact storage unavailable: {exc}") from None
        try:
            for number, chunk in enumerate(_chunks(stream, max_bytes, S3_PART_BYTES), 1):
                digest.update(chunk)
                size += len(chunk)
                part = self.client.upload_part(Bucket=self.bucket, Key=incoming,
                                               UploadId=upload["UploadId"], PartNumber=number,
                                               Body=chunk)
                parts.append({"ETag": part["ETag"], "PartNumber": number})
            if not parts:  # an empty file: one empty part
                part = self.client.upload_part(Bucket=self.bucket, Key=incoming,
                                               UploadId=upload["UploadId"], PartNumber=1,
                                               Body=b"")
                parts.append({"ETag": part["ETag"], "PartNumber": 1})
            self.client.complete_multipart_upload(
                Bucket=self.bucket, Key=incoming, UploadId=upload["UploadId"],
                MultipartUpload={"Parts": parts})
        except BaseException as exc:
            self.client.abort_multipart_upload(Bucket=self.bucket, Key=incoming,
                                               UploadId=upload["UploadId"])
            if isinstance(exc, self._errors()):
                raise Unavailable(f"Artifact storage unavailable: {exc}") from None
            raise
        key = f"objects/{digest.hexdigest()}"
        try:
            self.client.copy({"Bucket": self.bucket, "Key": incoming}, self.bucket, key)
            self.client.delete_object(Bucket=self.bucket, Key=incoming)
        except self._errors() as exc:
            raise Unavailable(f"Artifact storage unavailable: {exc}") from None
        return StoredObject(key, digest.hexdigest(), size)

    def delete(self, key: str) -> None:
        try:
            self.client.delete_object(Bucket=self.bucket, Key=key)
        except self._errors() as exc:
            raise Unavailable(f"Artifact storage unavailable: {exc}") from None

    def local_path(self, key: str) -> Path | None:
        return None

    def read_range(self, key: str, start: int, end: int) -> Iterator[bytes]:
        try:
            answer = self.client.get_object(Bucket=self.bucket, Key=key,
                                            Range=f"bytes={start}-{end}")
        except self._errors() as exc:
            raise Unavailable(f"Artifact storage unavailable: {exc}") from None
        body = answer["Body"]
        try:
            yield from body.iter_chunks(CHUNK_BYTES)
        finally:
            body.close()


def storage_from_settings(settings: Settings) -> ArtifactStorage:
    if settings.artifact_storage == "local":
        return LocalStorage(Path(settings.artifact_dir))
    if settings.artifact_storage == "s3":
        if not settings.artifact_s3_bucket:
            raise Misconfigured("ARTIFACT_STORAGE=s3 needs ARTIFACT_S3_BUCKET")
        return S3Storage(settings.artifact_s3_bucket, settings.artifact_s3_endpoint_url)
    raise Misconfigured(f"ARTIFACT_STORAGE must be local or s3, not {settings.artifact_storage!r}")
