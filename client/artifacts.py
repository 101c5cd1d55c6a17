"""``dispatcher artifacts upload|list|show|delete``, and ``jobs execute --artifact``.

An upload streams the file to the API (never read whole into memory) with its sha256, which
the API checks. ``jobs execute --artifact FILE_OR_NAME=DESTINATION`` is the common case in one
command: the file is uploaded (when it is a local file; else it names an artifact already
uploaded) and a job of one ``download-file`` step per ``--artifact`` delivers it.
"""

from __future__ import annotations

import argparse
import hashlib
import os
from pathlib import Path

from client.api import DeviceJobsClient
from client.command import UsageError, command_group, rows_command, show_command, with_client
from client.output import column, print_answer

ARTIFACT_COLUMNS = [
    column("ID", "id"), column("NAME", "name"), column("SIZE", "size"),
    column("SHA256", "sha256"), column("CREATED", "created_at"),
    ("USED_BY", lambda row: len(row.get("used_by") or [])),
]


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for chunk in iter(lambda: file.read(1024 * 1024), b""):
            digest.update(chunk)
    return digest.hexdigest()


def upload_artifact(client: DeviceJobsClient, path: Path, name: str | None = None) -> dict:
    """Upload ``path`` as ``name`` (its file name by default), checked against its sha256."""
    query = {"name": name or path.name, "sha256": file_sha256(path)}
    with open(path, "rb") as file:
        return client.request("POST", "/artifacts", query=query, raw_body=file,
                              raw_length=os.fstat(file.fileno()).st_size)


def find_artifact(client: DeviceJobsClient, name_or_id: str) -> dict:
    """The artifact with this id, else the newest of this name."""
    for artifact in _all(client):
        if name_or_id in (artifact["id"], artifact["name"]):
            return client.request("GET", f"/artifacts/{artifact['id']}")
    raise UsageError(f"no artifact named {name_or_id!r}")


def _all(client: DeviceJobsClient) -> list[dict]:
    found, offset = [], 0
    while True:
        page = client.request("GET", "/artifacts", query={"limit": 500, "offset": offset})
        found.extend(page["artifacts"])
        offset += len(page["artifacts"])
        if not page["artifacts"] or offset >= page["total"]:
            return found


def delivery_document(client: DeviceJobsClient, deliveries: list[str]) -> dict:
    """A job document of one ``download-file`` step per ``FILE_OR_NAME=DESTINATION``,
    uploading each local file first."""
    steps = []
    for delivery in deliveries:
        source, separator, destination = delivery.rpartition("=")
        if not separator or not source or not destination.startswith("/"):
            raise UsageError(f"--artifact {delivery!r}: expected FILE_OR_NAME=/absolute/path")
        name = source
        if Path(source).is_file():
            name = upload_artifact(client, Path(source))["name"]
        steps.append({"name": f"download {name}", "type": "runHandler", "input": {
            "handler": "download-file", "args": [f"artifact:{name}", destination]}})
    return {"version": "1.0", "includeStdOut": True, "steps": steps}


@with_client
def cmd_artifacts_upload(args: argparse.Namespace, client: DeviceJobsClient) -> int:
    path = Path(args.file)
    if not path.is_file():
        raise UsageError(f"{args.file}: no such file")
    artifact = upload_artifact(client, path, args.name)
    print_answer(artifact, args.output, f"artifact {artifact['name']} ({artifact['size']} "
                 f"bytes, sha256 {artifact['sha256']}) stored as {artifact['id']}")
    return 0


cmd_artifacts_list = rows_command(ARTIFACT_COLUMNS, lambda client, args: _all(client))


cmd_artifacts_show = show_command(lambda client, args: find_artifact(client, args.artifact))


@with_client
def cmd_artifacts_delete(args: argparse.Namespace, client: DeviceJobsClient) -> int:
    artifact = find_artifact(client, args.artifact)
    client.request("DELETE", f"/artifacts/{artifact['id']}")
    print(f"artifact {artifact['name']} ({artifact['id']}) deleted")
    return 0


def add_commands(sub: argparse._SubParsersAction, connection: argparse.ArgumentParser,
                 read: argparse.ArgumentParser) -> None:
    a_sub = command_group(sub, "artifacts", "artifacts_command",
                          help="files delivered to devices (via the API)")
    p = a_sub.add("upload", read, cmd_artifacts_upload, help="upload a file (checked by sha256)")
    p.add_argument("file")
    p.add_argument("--name", help="the artifact's name (default: the file's name)")
    a_sub.add("list", read, cmd_artifacts_list, help="artifacts, newest first")
    p = a_sub.add("show", read, cmd_artifacts_show, help="an artifact and where it is used")
    p.add_argument("artifact", metavar="NAME|ID")
    p = a_sub.add("delete", connection, cmd_artifacts_delete,
                  help="delete an artifact (refused while a live execution uses it)")
    p.add_argument("artifact", metavar="NAME|ID")
