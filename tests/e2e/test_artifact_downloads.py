"""Artifact downloads by real agent processes from the real API (gunicorn), through a proxy that
plays a bad link: a download cut at 40 % and again at 80 % ends with the right bytes, each new
attempt asking only for what was missing; an agent killed mid-download and started again goes
on from where it was; a stored file that no longer matches its sha256 is refused (FAILED with
the reason, nothing at the destination); a canceled download stops; a plain URL resumes and is
checked the same way; a signing agent follows the signed pin, not the database's."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import urllib.request
from dataclasses import replace
from pathlib import Path

import pytest
from agent_processes import start_agent
from cutting_proxy import CuttingProxy
from processes import wait_until
from suite_constants import TEST_ADMIN_TOKEN
from test_agent_e2e import Fleet

from dispatcher import db
from dispatcher.signing import create_key_file

pytestmark = pytest.mark.slow

SIZE = 3 * 1024 * 1024


def upload(api_url: str, name: str, data: bytes) -> dict:
    request = urllib.request.Request(f"{api_url}/api/v1/artifacts?name={name}", data=data,
                                     method="POST", headers={
                                         "Authorization": f"Bearer {TEST_ADMIN_TOKEN}",
                                         "Content-Type": "application/octet-stream"})
    with urllib.request.urlopen(request) as answer:
        assert answer.status == 201
        return json.loads(answer.read())


def download_job(name: str, destination: Path) -> dict:
    return {"version": "1.0", "steps": [{
        "name": "fetch", "type": "runHandler",
        "input": {"handler": "download-file", "args": [f"artifact:{name}", str(destination)]}}]}


@pytest.fixture
def fleet(settings, server_processes, tmp_path):
    return Fleet(settings, server_processes, tmp_path)


def agent_through(fleet: Fleet, device: dict, proxy: CuttingProxy):
    return start_agent(fleet.processes, proxy.url, device, device["home"], 1.0,
                       cancel_check_s="1", log_level="DEBUG")


def start_slow_download(fleet: Fleet, name: str, proxy: CuttingProxy) -> tuple:
    """A device's agent, through ``proxy``, downloading a new artifact ``name``: (the data,
    the agent, the job, the destination, the agent's .part file)."""
    data = os.urandom(SIZE)
    artifact = upload(fleet.api.url, name, data)
    device = fleet.register(f"device-{name}")
    destination = device["home"] / name
    part = device["home"] / "state" / "downloads" / f"{artifact['sha256']}.part"
    agent = agent_through(fleet, device, proxy)
    job_id = fleet.execute_on(device, download_job(name, destination))
    return data, device, agent, job_id, destination, part


def offsets(proxy: CuttingProxy) -> list[int]:
    return [int(r.split("=")[1].split("-")[0]) if r else 0 for r in proxy.ranges]


def test_a_download_cut_at_40_and_80_percent_finishes_with_the_right_bytes(fleet):
    data = os.urandom(SIZE)
    upload(fleet.api.url, "firmware.bin", data)
    device = fleet.register("weak-link")
    destination = device["home"] / "firmware.bin"
    with CuttingProxy(fleet.api.port, cut_at=(SIZE * 4 // 10, SIZE * 8 // 10)) as proxy:
        agent_through(fleet, device, proxy)
        job_id = fleet.execute_on(device, download_job("firmware.bin", destination))
        row = fleet.wait_for_status(job_id, "SUCCEEDED", "FAILED", timeout_s=90)
        assert row["status"] == "SUCCEEDED", row
        assert proxy.cuts == 2
        starts = offsets(proxy)
    assert destination.read_bytes() == data
    assert len(starts) == 3 and starts[0] == 0
    assert SIZE * 3 // 10 < starts[1] <= SIZE * 4 // 10 < starts[2] <= SIZE * 8 // 10
    assert os.stat(destination).st_mode & 0o777 == 0o644
    assert list((device["home"] / "state" / "downloads").iterdir()) == []


def test_an_agent_killed_mid_download_resumes_where_it_was(fleet):
    with CuttingProxy(fleet.api.port, delay_s=0.02) as proxy:
        data, device, agent, job_id, destination, part = start_slow_download(
            fleet, "image.bin", proxy)
        reported = wait_until(
            lambda: (fleet.device_row(job_id).get("status_details") or {}).get("download"), 60,
            "a progress report of the download")
        assert reported["size"] == SIZE and 0 < reported["bytes"] < SIZE
        wait_until(lambda: part.exists() and part.stat().st_size > SIZE // 3, 60,
                   "a third of the download")
        agent.kill()
        had = part.stat().st_size
        proxy.delay_s = 0.0
        agent_through(fleet, device, proxy)
        row = fleet.wait_for_status(job_id, "SUCCEEDED", "FAILED", timeout_s=90)
        assert row["status"] == "SUCCEEDED", row
        starts = offsets(proxy)
    assert destination.read_bytes() == data
    assert starts[0] == 0 and len(starts) == 2
    assert SIZE // 3 < starts[1] <= had


def test_a_corrupted_stored_file_is_refused(fleet, tmp_path):
    data = os.urandom(256 * 1024)
    artifact = upload(fleet.api.url, "config.tar", data)
    stored = tmp_path / "artifacts" / "objects" / artifact["sha256"][:2] / artifact["sha256"]
    stored.write_bytes(bytes(len(data)))  # same size, other bytes
    device = fleet.register("careful")
    destination = device["home"] / "config.tar"
    fleet.start_agent(device)
    job_id = fleet.execute_on(device, download_job("config.tar", destination))
    row = fleet.wait_for_status(job_id, "SUCCEEDED", "FAILED", timeout_s=60)
    assert row["status"] == "FAILED"
    expected = hashlib.sha256(data).hexdigest()
    assert f"sha256 mismatch for artifact {artifact['id']}: expected {expected}" in row["reason"]
    assert not destination.exists()
    assert list(destination.parent.glob(".config.tar.*")) == []


def test_a_canceled_download_stops_between_chunks(fleet):
    with CuttingProxy(fleet.api.port, delay_s=0.05) as proxy:
        _, _, agent, job_id, destination, part = start_slow_download(fleet, "large.bin", proxy)
        wait_until(lambda: part.exists() and part.stat().st_size > SIZE // 10, 60,
                   "a tenth of the download")
        fleet.call("POST", f"/jobs/executions/{job_id}/cancel", {"force": True})
        wait_until(lambda: "job stopped, ended on the server" in agent.log_text(), 30,
                   "the agent to stop the job")
        stopped_at = part.stat().st_size
        assert stopped_at < SIZE
        assert fleet.device_row(job_id)["status"] == "CANCELED"
    assert not destination.exists()
    assert part.stat().st_size == stopped_at


def test_a_plain_url_resumes_through_cuts_and_is_checked_against_its_sha256(fleet, tmp_path):
    from static_server import nginx

    # Outside pytest's private temporary directory: nginx's workers run as another user.
    www = Path(tempfile.mkdtemp(prefix="device-jobs-www-"))
    (www / "artifacts").mkdir()
    data = os.urandom(SIZE)
    (www / "artifacts" / "release.bin").write_bytes(data)
    for readable in (www, www / "artifacts", www / "artifacts" / "release.bin"):
        readable.chmod(0o755)
    device = fleet.register("web-client")
    fleet.start_agent(device)
    destination = device["home"] / "release.bin"
    digest = hashlib.sha256(data).hexdigest()
    with nginx(www, tmp_path / "nginx") as port, \
            CuttingProxy(port, cut_at=(SIZE * 4 // 10, SIZE * 8 // 10)) as proxy:
        url = f"{proxy.url}/artifacts/release.bin"
        job_id = fleet.execute_on(device, {"version": "1.0", "steps": [{
            "name": "fetch", "type": "runHandler",
            "input": {"handler": "download-file", "args": [url, str(destination), digest]}}]})
        row = fleet.wait_for_status(job_id, "SUCCEEDED", "FAILED", timeout_s=90)
        assert row["status"] == "SUCCEEDED", row
        starts = offsets(proxy)
        assert proxy.cuts == 2 and len(starts) == 3
        assert 0 == starts[0] < starts[1] <= SIZE * 4 // 10 < starts[2] <= SIZE * 8 // 10
        assert destination.read_bytes() == data

        other = device["home"] / "other.bin"
        wrong = fleet.execute_on(device, {"version": "1.0", "steps": [{
            "name": "fetch", "type": "runHandler",
            "input": {"handler": "download-file", "args": [url, str(other), "0" * 64]}}]})
        refused = fleet.wait_for_status(wrong, "SUCCEEDED", "FAILED", timeout_s=60)
    assert refused["status"] == "FAILED"
    assert f"sha256 mismatch for {url}: expected {'0' * 64}, got {digest}" in refused["reason"]
    assert not other.exists()
    shutil.rmtree(www)


def test_a_signing_agent_downloads_what_the_signature_pinned(settings, server_processes,
                                                             tmp_path):
    """The pin is part of the signed job: a pin rewritten in the database afterwards (another
    artifact's id and sha256) is not what the agent follows."""
    key_file = tmp_path / "signing.pem"
    public_key = create_key_file(key_file)
    fleet = Fleet(replace(settings, signing_key_file=str(key_file)), server_processes, tmp_path)
    data = os.urandom(200_000)
    upload(fleet.api.url, "signed.bin", data)
    other = upload(fleet.api.url, "other.bin", b"not what was signed")
    device = fleet.register("signing")
    destination = device["home"] / "signed.bin"
    job_id = fleet.execute_on(device, download_job("signed.bin", destination))
    with db.pool().connection() as conn:
        conn.execute("""UPDATE job_executions SET job_document = jsonb_set(job_document,
                        '{steps,0,input,artifact}', %s::jsonb) WHERE job_id = %s""",
                     (json.dumps({"id": other["id"], "sha256": other["sha256"],
                                  "size": other["size"]}), job_id))
    start_agent(fleet.processes, fleet.api.url, device, device["home"], 1.0,
                signing_public_key=public_key)
    row = fleet.wait_for_status(job_id, "SUCCEEDED", "FAILED", timeout_s=60)
    assert row["status"] == "SUCCEEDED", row
    assert destination.read_bytes() == data
