"""Artifacts through the API: uploaded once (raw or multipart, hashed while streamed, checked
against a given sha256, refused past the limit), listed, shown and deleted (never while a live
execution uses them); pinned at execute to id, sha256 and size under the job's signature; and
downloaded by a device with its own token only while its unfinished job uses them, with ranges,
ETag and If-Range."""

from __future__ import annotations

import hashlib
import io
import socket
from dataclasses import replace
from pathlib import Path

import pytest
from job_rows import (
    fan_out,
    job_row,
    register_fleet,
    set_row_status,
    status_url,
    target_events,
)
from json_http import JsonHttp
from suite_constants import TEST_ADMIN_TOKEN

from dispatcher.signing import create_key_file
from schemas.document_signing import read_signed_job

ARTIFACTS = "/api/v1/artifacts"
CONFIG = b"worker_processes auto;\nevents {}\nhttp { server { listen 8080; } }\n" * 40


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def upload(client, headers, name: str, data: bytes, expect: int = 201, **query) -> dict:
    answer = client.post(ARTIFACTS, query_string={"name": name, **query}, data=data,
                         headers={**headers, "Content-Type": "text/plain"})
    assert answer.status_code == expect, answer.get_json()
    return answer.get_json()


def stored_files(settings) -> list:
    return sorted(p.name for p in Path(settings.artifact_dir).rglob("*") if p.is_file())


def download_document(reference: str = "artifact:nginx.conf") -> dict:
    return {"version": "1.0", "steps": [{
        "name": "fetch config", "type": "runHandler",
        "input": {"handler": "download-file", "args": [reference, "/etc/nginx/nginx.conf"]}}]}


def execute(client, headers, document: dict, devices: list, expect: int = 201) -> dict:
    answer = client.post("/api/v1/jobs/execute", headers=headers, json={
        "job_name": "deliver config", "job_document": document, "target_type": "device",
        "target_devices": [str(device.uuid) for device in devices]})
    assert answer.status_code == expect, answer.get_json()
    return answer.get_json()


def test_upload_streams_hashes_and_stores_the_same_content_once(client, admin_headers,
                                                                settings):
    artifact = upload(client, admin_headers, "nginx.conf", CONFIG)
    assert artifact["name"] == "nginx.conf" and artifact["size"] == len(CONFIG)
    assert artifact["sha256"] == sha256(CONFIG)
    assert artifact["content_type"] == "text/plain"
    assert artifact["created_by"] == "admin:bootstrap" or artifact["created_by"].startswith(
        "admin:")
    again = upload(client, admin_headers, "nginx.conf", CONFIG, expect=200)
    assert again["id"] == artifact["id"]
    renamed = upload(client, admin_headers, "nginx-copy.conf", CONFIG)
    assert renamed["id"] != artifact["id"]
    assert stored_files(settings) == [sha256(CONFIG)]  # stored once, nothing left incoming
    assert [e["action"] for e in target_events("artifact", artifact["id"])] == [
        "artifact.uploaded"]


def test_multipart_upload_with_a_sha256_that_must_match(client, admin_headers, settings):
    form = {"file": (io.BytesIO(CONFIG), "nginx.conf", "text/plain"), "sha256": sha256(CONFIG)}
    answer = client.post(ARTIFACTS, query_string={"name": "nginx.conf"}, data=form,
                         headers=admin_headers, content_type="multipart/form-data")
    assert answer.status_code == 201, answer.get_json()
    assert answer.get_json()["sha256"] == sha256(CONFIG)
    wrong = {"file": (io.BytesIO(b"tampered"), "nginx.conf"), "sha256": sha256(CONFIG)}
    refused = client.post(ARTIFACTS, query_string={"name": "other.conf"}, data=wrong,
                          headers=admin_headers, content_type="multipart/form-data")
    assert refused.status_code == 422
    assert refused.get_json()["errors"] == {"sha256": ["Does not match the uploaded content."]}
    raw = upload(client, admin_headers, "third.conf", b"x", expect=422, sha256="0" * 64)
    assert "sha256" in raw["errors"]
    assert stored_files(settings) == [sha256(CONFIG)]
    no_file = client.post(ARTIFACTS, query_string={"name": "x"}, data={"sha256": "1"},
                          headers=admin_headers, content_type="multipart/form-data")
    assert no_file.status_code == 400


def test_an_upload_past_the_limit_is_413_and_leaves_nothing(settings, admin_headers):
    from api.app import create_app

    small = replace(settings, artifact_max_bytes=1000)
    client = create_app(small).test_client()
    answer = upload(client, admin_headers, "big.bin", b"x" * 1001, expect=413)
    assert answer["code"] == 413
    upload(client, admin_headers, "fits.bin", b"x" * 1000)
    assert client.get(ARTIFACTS, headers=admin_headers).get_json()["total"] == 1
    assert stored_files(small) == [sha256(b"x" * 1000)]


def test_bad_names_and_roles(client, admin_headers, viewer_headers):
    assert upload(client, admin_headers, "../etc/passwd", b"x", expect=400)["errors"]["name"]
    assert upload(client, admin_headers, "ok", b"x", expect=400, sha256="zz")["errors"]
    upload(client, viewer_headers, "ok", b"x", expect=403)
    assert client.post(ARTIFACTS, query_string={"name": "ok"}, data=b"x").status_code == 401
    assert client.get(f"{ARTIFACTS}/not-a-uuid", headers=admin_headers).status_code == 404
    assert client.get(ARTIFACTS, headers=viewer_headers).status_code == 200


def test_execute_pins_the_reference_under_the_signature_and_the_name_may_be_reused(
        settings, tmp_path, admin_headers):
    from api.app import create_app

    key_file = tmp_path / "signing.pem"
    create_key_file(key_file)
    signing = replace(settings, signing_key_file=str(key_file))
    client = create_app(signing).test_client()
    first = upload(client, admin_headers, "nginx.conf", CONFIG)
    (device,) = register_fleet(1)
    job = execute(client, admin_headers, download_document(), [device])["job"]
    row = job_row(job["job_id"])
    step_input = row["job_document"]["steps"][0]["input"]
    assert step_input["artifact"] == {"id": first["id"], "name": "nginx.conf",
                                      "sha256": sha256(CONFIG), "size": len(CONFIG)}
    assert step_input["args"] == [f"artifact:{first['id']}", "/etc/nginx/nginx.conf",
                                  sha256(CONFIG)]
    assert read_signed_job(row["signed_job"]).document == row["job_document"]

    newer = upload(client, admin_headers, "nginx.conf", b"changed\n")
    fan_out(row["job_id"], signing)
    body = client.get(f"/api/v1/devices/{device.uuid}/artifacts/{first['id']}",
                      headers=device.headers)
    assert body.status_code == 200 and body.data == CONFIG
    denied = client.get(f"/api/v1/devices/{device.uuid}/artifacts/{newer['id']}",
                        headers=device.headers)
    assert denied.status_code == 404
    by_id = execute(client, admin_headers, download_document(f"artifact:{first['id']}"),
                    [device])["job"]
    assert job_row(by_id["job_id"])["job_document"]["steps"][0]["input"]["artifact"]["id"] == \
        first["id"]
    latest = execute(client, admin_headers, download_document(), [device])["job"]
    assert job_row(latest["job_id"])["job_document"]["steps"][0]["input"]["artifact"]["id"] == \
        newer["id"]
    forged = download_document()
    forged["steps"][0]["input"]["artifact"] = {"id": newer["id"], "sha256": "0" * 64, "size": 1}
    kept = execute(client, admin_headers, forged, [device])["job"]
    assert job_row(kept["job_id"])["job_document"]["steps"][0]["input"]["artifact"][
        "sha256"] == sha256(b"changed\n")


def test_execute_naming_no_artifact_is_400(client, admin_headers):
    (device,) = register_fleet(1)
    refused = execute(client, admin_headers, download_document("artifact:missing"), [device],
                      expect=400)
    assert refused["errors"] == {"job_document": ["step 'fetch config': no artifact 'missing'"]}


def test_list_show_and_delete_refused_while_a_live_execution_uses_it(client, admin_headers,
                                                                    settings):
    artifact = upload(client, admin_headers, "nginx.conf", CONFIG)
    unused = upload(client, admin_headers, "unused.bin", b"unused")
    (device,) = register_fleet(1)
    job = execute(client, admin_headers, download_document(), [device])["job"]
    listed = client.get(ARTIFACTS, headers=admin_headers).get_json()
    assert listed["total"] == 2 and [a["name"] for a in listed["artifacts"]] == [
        "unused.bin", "nginx.conf"]
    assert listed["artifacts"][1]["used_by"] == [
        {"job_id": str(job["job_id"]), "job_name": "deliver config", "status": "QUEUED"}]
    shown = client.get(f"{ARTIFACTS}/{artifact['id']}", headers=admin_headers).get_json()
    assert shown["used_by"][0]["job_id"] == str(job["job_id"])
    assert "storage_key" not in shown

    refused = client.delete(f"{ARTIFACTS}/{artifact['id']}", headers=admin_headers)
    assert refused.status_code == 409
    assert refused.get_json()["errors"] == {"used_by": [str(job["job_id"])]}
    fan_out(job["job_id"], settings)
    finished = client.patch(status_url(device, job["job_id"]), json={"status": "SUCCEEDED"},
                            headers=device.headers)
    assert finished.status_code == 200, finished.get_json()
    deleted = client.delete(f"{ARTIFACTS}/{artifact['id']}", headers=admin_headers)
    assert deleted.status_code == 200, deleted.get_json()
    assert client.get(f"{ARTIFACTS}/{artifact['id']}", headers=admin_headers).status_code == 404
    assert stored_files(settings) == [sha256(b"unused")]
    assert [e["action"] for e in target_events("artifact", artifact["id"])] == [
        "artifact.uploaded", "artifact.deleted"]
    assert client.delete(f"{ARTIFACTS}/{unused['id']}", headers=admin_headers).status_code == 200
    assert stored_files(settings) == []


@pytest.fixture
def delivering(client, admin_headers, settings):
    """A device with an unfinished job that uses an artifact of 1,000 known bytes."""
    data = bytes(range(256)) * 3 + bytes(232)
    artifact = upload(client, admin_headers, "blob.bin", data)
    device, stranger = register_fleet(2)
    job = execute(client, admin_headers, download_document("artifact:blob.bin"), [device])["job"]
    fan_out(job["job_id"], settings)
    url = f"/api/v1/devices/{device.uuid}/artifacts/{artifact['id']}"
    return client, device, stranger, artifact, data, url, job


def test_device_download_ranges_etag_and_if_range(delivering):
    client, device, _, artifact, data, url, _ = delivering
    etag = f'"{artifact["sha256"]}"'

    def get(**headers):
        return client.get(url, headers={**device.headers, **headers})

    whole = get()
    assert whole.status_code == 200 and whole.data == data
    assert whole.headers["ETag"] == etag and whole.headers["Accept-Ranges"] == "bytes"
    assert whole.headers["Content-Length"] == "1000"
    for header, status, first, last in (
            ("bytes=0-", 206, 0, 999), ("bytes=999-999", 206, 999, 999),
            ("bytes=-1", 206, 999, 999), ("bytes=400-", 206, 400, 999),
            ("bytes=990-5000", 206, 990, 999)):
        answer = get(Range=header)
        assert answer.status_code == status, header
        assert answer.headers["Content-Range"] == f"bytes {first}-{last}/1000"
        assert answer.data == data[first:last + 1]
    beyond = get(Range="bytes=1000-")
    assert beyond.status_code == 416
    assert beyond.headers["Content-Range"] == "bytes */1000"
    assert beyond.get_json()["code"] == 416
    several = get(Range="bytes=0-1,5-9")
    assert several.status_code == 200 and several.data == data
    assert get(Range="bytes=10-19", **{"If-Range": etag}).data == data[10:20]
    changed = get(Range="bytes=10-19", **{"If-Range": '"' + "0" * 64 + '"'})
    assert changed.status_code == 200 and changed.data == data


def test_device_download_only_while_its_own_job_is_unfinished(delivering, admin_headers):
    client, device, stranger, artifact, _, url, job = delivering
    assert client.get(url, headers=stranger.headers).status_code == 403  # another's uuid
    own = f"/api/v1/devices/{stranger.uuid}/artifacts/{artifact['id']}"
    assert client.get(own, headers=stranger.headers).status_code == 404
    assert client.get(url).status_code == 401
    assert client.get(url, headers=admin_headers).status_code == 403
    set_row_status(job["job_id"], device, "FAILED")
    assert client.get(url, headers=device.headers).status_code == 404


def test_a_body_cut_short_under_gunicorn_is_refused_and_nothing_is_stored(api_server,
                                                                        settings):
    """The client declares 1,000 bytes, sends 100 and closes its side: 400 naming what is
    missing, no artifact and no stored file (gunicorn's input just ends, so the length is the
    only way to tell)."""
    host, port = api_server.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=30) as conn:
        conn.sendall(f"POST /api/v1/artifacts?name=cut.bin HTTP/1.1\r\nHost: {host}\r\n"
                     f"Authorization: Bearer {TEST_ADMIN_TOKEN}\r\n"
                     "Content-Type: application/octet-stream\r\nContent-Length: 1000\r\n"
                     "Connection: close\r\n\r\n".encode() + b"x" * 100)
        conn.shutdown(socket.SHUT_WR)
        answer = b""
        while chunk := conn.recv(65536):
            answer += chunk
    status_line, _, rest = answer.partition(b"\r\n")
    assert status_line.split()[1] == b"400", answer
    assert b"900 bytes before its Content-Length" in rest
    status, listing = JsonHttp(api_server.url).request(
        "GET", "/api/v1/artifacts", None, {"Authorization": f"Bearer {TEST_ADMIN_TOKEN}"})
    assert (status, listing["artifacts"]) == (200, [])
    stored = Path(settings.artifact_dir)
    assert [p for p in stored.rglob("*") if p.is_file()] == []
