"""Artifacts in an S3-compatible bucket (moto's server, a real HTTP S3 endpoint on this
machine) through boto3: an upload in several parts, stored once under its sha256; ranges read
from the bucket; a delete that removes the object; and a real agent downloading through the
real API from the bucket, with no storage credential and its token going to the API alone."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from dataclasses import replace

import boto3
import pytest
from job_rows import fan_out, register_fleet
from processes import free_port, wait_until
from test_agent_e2e import Fleet
from test_artifact_downloads import download_job, upload

from api.app import create_app

pytestmark = pytest.mark.slow

BUCKET = "device-jobs-artifacts"


@pytest.fixture
def s3_endpoint(tmp_path, monkeypatch):
    """moto's S3 server on a free port, with a bucket; boto3 finds its credentials in the
    environment (the API's processes inherit them)."""
    port = free_port()
    log = open(tmp_path / "moto.log", "wb")  # noqa: SIM115 - closed below
    server = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1",
                               "-p", str(port)], stdout=log, stderr=subprocess.STDOUT)
    for name, value in (("AWS_ACCESS_KEY_ID", "testing"), ("AWS_SECRET_ACCESS_KEY", "testing"),
                        ("AWS_DEFAULT_REGION", "us-east-1")):
        monkeypatch.setenv(name, value)
    url = f"http://127.0.0.1:{port}"
    client = boto3.client("s3", endpoint_url=url)

    def bucket_made() -> bool:
        try:
            client.create_bucket(Bucket=BUCKET)
        except Exception:  # noqa: BLE001 - not listening yet
            return False
        return True

    wait_until(bucket_made, 30, "moto's S3 server")
    yield url, client
    server.terminate()
    server.wait(10)
    log.close()


def objects(client) -> list[str]:
    return sorted(o["Key"] for o in client.list_objects_v2(Bucket=BUCKET).get("Contents", []))


def test_s3_upload_in_parts_ranges_and_delete(settings, s3_endpoint, admin_headers, tmp_path):
    url, s3 = s3_endpoint
    client = create_app(replace(settings, artifact_storage="s3", artifact_s3_bucket=BUCKET,
                                artifact_s3_endpoint_url=url)).test_client()
    data = os.urandom(9 * 1024 * 1024 + 5)  # two parts
    digest = hashlib.sha256(data).hexdigest()
    posted = client.post("/api/v1/artifacts", query_string={"name": "image.bin"}, data=data,
                         headers=admin_headers)
    assert posted.status_code == 201, posted.get_json()
    artifact = posted.get_json()
    assert artifact["sha256"] == digest and artifact["size"] == len(data)
    again = client.post("/api/v1/artifacts", query_string={"name": "image.bin"}, data=data,
                        headers=admin_headers)
    assert again.status_code == 200
    assert objects(s3) == [f"objects/{digest}"]  # stored once, no upload left behind

    (device,) = register_fleet(1)
    job = client.post("/api/v1/jobs/execute", headers=admin_headers, json={
        "job_name": "s3", "job_document": download_job("image.bin", tmp_path / "image.bin"),
        "target_type": "device", "target_devices": [str(device.uuid)]}).get_json()["job"]
    fan_out(job["job_id"], settings)
    path = f"/api/v1/devices/{device.uuid}/artifacts/{artifact['id']}"
    whole = client.get(path, headers=device.headers)
    assert whole.status_code == 200 and whole.data == data
    assert whole.headers["ETag"] == f'"{digest}"'
    tail = client.get(path, headers={**device.headers, "Range": "bytes=9437180-"})
    assert tail.status_code == 206 and tail.data == data[9437180:]
    assert tail.headers["Content-Range"] == f"bytes 9437180-{len(data) - 1}/{len(data)}"
    assert client.get(path, headers={**device.headers, "Range": f"bytes={len(data)}-"}
                      ).status_code == 416

    unused = client.post("/api/v1/artifacts", query_string={"name": "unused"}, data=b"u",
                         headers=admin_headers).get_json()
    assert client.delete(f"/api/v1/artifacts/{unused['id']}",
                         headers=admin_headers).status_code == 200
    assert objects(s3) == [f"objects/{digest}"]


def test_a_real_agent_downloads_from_the_bucket_through_the_api(settings, server_processes,
                                                                tmp_path, s3_endpoint):
    url, _ = s3_endpoint
    fleet = Fleet(replace(settings, artifact_storage="s3", artifact_s3_bucket=BUCKET,
                          artifact_s3_endpoint_url=url), server_processes, tmp_path)
    data = os.urandom(1024 * 1024 + 3)
    upload(fleet.api.url, "bundle.tar", data)
    device = fleet.register("s3-device")
    destination = device["home"] / "bundle.tar"
    fleet.start_agent(device)
    job_id = fleet.execute_on(device, download_job("bundle.tar", destination))
    row = fleet.wait_for_status(job_id, "SUCCEEDED", "FAILED", timeout_s=60)
    assert row["status"] == "SUCCEEDED", row
    assert destination.read_bytes() == data
