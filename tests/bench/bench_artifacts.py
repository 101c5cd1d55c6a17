"""Artifact benchmark: one artifact to many devices at once through the API, next to the same
bytes from a static file server on the same machine; and a large upload next to the disk.

1. Delivery: an artifact of ``--size-mb`` is uploaded through the API and pinned by a job
   queued on ``--devices`` devices; then every device downloads it at once (one ``curl``
   process each, with its own token) from the API under gunicorn as deployed. The same file is
   then fetched the same way from nginx (the distribution's, ``sendfile on``) and from
   ``python -m http.server``: the floors. Printed: aggregate throughput of each, the API's
   ratio to each floor (the goal: within 1.5x of nginx), and the API processes' resident
   memory before and at its peak during the run (flat: it does not grow with the size).
2. Upload: a file of ``--upload-mb`` is uploaded through the API (hashed and fsynced while
   streamed) and compared with writing the same bytes to the same disk with an fsync (the
   goal: at least 0.7x the disk's speed), and with hashing them alone (a ceiling: the API
   hashes every byte it stores). Upload (new content each time) and floor alternate for
   ``--upload-rounds``, each after a ``sync``, and nothing is deleted until the end (a disk
   mounted with online discard is slow for seconds after a large file is deleted, whichever of
   the two comes next); the best of each is compared, every time printed.

    .venv/bin/python tests/bench/bench_artifacts.py [--size-mb 100] [--devices 50]
        [--upload-mb 1024] [--upload-rounds 5]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/: the process helpers

from bench_support import (  # noqa: E402
    ADMIN_TOKEN,
    bench_database,
    device_token,
    device_uuid,
    gunicorn,
    register_fleet,
)
from processes import free_port  # noqa: E402
from static_server import nginx, wait_for_port  # noqa: E402

CHUNK = 1024 * 1024


def write_random_file(path: Path, size_mb: int) -> None:
    """Write it to disk before it is measured: its writeback would otherwise compete with the
    upload being timed (and not with the floor, measured later)."""
    block = os.urandom(CHUNK)
    with open(path, "wb") as file:
        for i in range(size_mb):
            file.write(block[i % 7:] + block[:i % 7])
        file.flush()
        os.fsync(file.fileno())


def upload(base_url: str, path: Path, name: str) -> tuple[dict, float]:
    started = time.perf_counter()
    output = subprocess.run(
        ["curl", "-sS", "--fail", "-X", "POST", "-H", f"Authorization: Bearer {ADMIN_TOKEN}",
         "-H", "Content-Type: application/octet-stream", "-H", "Expect:",
         "-T", str(path), f"{base_url}/api/v1/artifacts?name={name}"],
        check=True, capture_output=True, text=True).stdout
    return json.loads(output), time.perf_counter() - started


def queue_job(database_url: str, artifact_id: str, devices: int) -> None:
    """A job pinned to the artifact, QUEUED on every device (as execute and fan-out leave it)."""
    job_id = uuid.uuid4()
    document = {"version": "1.0", "steps": [{"name": "fetch", "type": "runHandler", "input": {
        "handler": "download-file", "args": [f"artifact:{artifact_id}", "/tmp/x"]}}]}
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("INSERT INTO job_executions (job_id, job_name, job_document, target_type,"
                     " status, total_devices, fanout_status) VALUES (%s, 'bench', %s, 'all',"
                     " 'QUEUED', %s, 'DONE')", (job_id, json.dumps(document), devices))
        conn.execute("INSERT INTO job_artifacts (job_id, artifact_id) VALUES (%s, %s)",
                     (job_id, artifact_id))
        conn.execute("INSERT INTO device_job_status (job_id, device_uuid) SELECT %s, uuid"
                     " FROM devices", (job_id,))


def fetch_all(urls_and_headers: list[tuple[str, str | None]], expected_bytes: int) -> float:
    """Every URL fetched at once by its own curl; answers the wall time in seconds."""
    started = time.perf_counter()
    processes = []
    for url, header in urls_and_headers:
        argv = ["curl", "-sS", "--fail", "-o", "/dev/null", "-w", "%{size_download}", url]
        if header:
            argv[1:1] = ["-H", header]
        processes.append(subprocess.Popen(argv, stdout=subprocess.PIPE, text=True))
    for process in processes:
        out, _ = process.communicate()
        if process.returncode != 0 or int(out) != expected_bytes:
            raise RuntimeError(f"a download failed: exit {process.returncode}, {out} bytes")
    return time.perf_counter() - started


def gunicorn_rss_kb(port: int) -> int:
    """Resident memory of the gunicorn processes listening on ``port`` (master and workers)."""
    total = 0
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
            if b"gunicorn" not in cmdline or f":{port}".encode() not in cmdline:
                continue
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            continue
    return total


class PeakMemory:
    def __init__(self, port: int) -> None:
        self.port = port
        self.peak_kb = 0
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def __enter__(self) -> PeakMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._done.set()
        self._thread.join()

    def _sample(self) -> None:
        while True:
            self.peak_kb = max(self.peak_kb, gunicorn_rss_kb(self.port))
            if self._done.wait(0.05):
                return


def http_server(root: Path, port: int) -> subprocess.Popen:
    process = subprocess.Popen([sys.executable, "-m", "http.server", str(port), "--bind",
                                "127.0.0.1", "--directory", str(root)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_for_port(port)
    return process


def disk_write_s(path: Path, size_mb: int) -> float:
    """Kept until the end, like the uploads: a large delete on a disk mounted with online
    discard slows whatever writes next."""
    block = os.urandom(CHUNK)
    started = time.perf_counter()
    with open(path, "wb") as file:
        for _ in range(size_mb):
            file.write(block)
        file.flush()
        os.fsync(file.fileno())
    return time.perf_counter() - started


def sha256_s(size_mb: int) -> float:
    """What hashing the upload costs on this machine, alone (the API must hash every byte)."""
    block = os.urandom(CHUNK)
    digest = hashlib.sha256()
    started = time.perf_counter()
    for _ in range(size_mb):
        digest.update(block)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=int, default=100)
    parser.add_argument("--devices", type=int, default=50)
    parser.add_argument("--upload-mb", type=int, default=1024)
    parser.add_argument("--upload-rounds", type=int, default=5)
    args = parser.parse_args()
    if shutil.which("curl") is None or shutil.which("nginx") is None:
        raise SystemExit("this benchmark needs curl and nginx: apt-get install curl nginx")
    work = Path(tempfile.mkdtemp(prefix="device-jobs-bench-artifacts-"))
    store, static = work / "store", work / "static"
    static.mkdir()
    source = static / "artifact.bin"
    write_random_file(source, args.size_mb)
    for readable in (work, static, source):  # nginx's workers run as another user
        readable.chmod(0o755)
    size = source.stat().st_size
    total_mb = size * args.devices / 1e6
    try:
        with bench_database("bench_artifacts") as database_url:
            register_fleet(database_url, args.devices)
            port = free_port()
            with gunicorn(database_url, port, ARTIFACT_DIR=str(store),
                          ARTIFACT_MAX_BYTES=str(4 * 1024 ** 3)) as base_url:
                artifact, _ = upload(base_url, source, "artifact.bin")
                queue_job(database_url, artifact["id"], args.devices)
                idle_kb = gunicorn_rss_kb(port)
                requests = [(f"{base_url}/api/v1/devices/{device_uuid(i)}/artifacts/"
                             f"{artifact['id']}", f"Authorization: Bearer {device_token(i)}")
                            for i in range(1, args.devices + 1)]
                with PeakMemory(port) as memory:
                    api_s = fetch_all(requests, size)

                big = work / "upload.bin"
                write_random_file(big, args.upload_mb)
                uploads, disks = [], []
                for round_ in range(args.upload_rounds):
                    with open(big, "r+b") as first_byte:  # new content: a new stored file
                        first_byte.write(bytes([round_]))
                    os.sync()
                    uploads.append(upload(base_url, big, f"upload-{round_}.bin")[1])
                    os.sync()
                    disks.append(disk_write_s(store / f"disk-floor-{round_}.bin",
                                              args.upload_mb))
                big.unlink()
            upload_s, disk_s = min(uploads), min(disks)
            hash_s = sha256_s(args.upload_mb)

        floors = {}
        with nginx(static, work / "nginx") as nginx_port:
            floors["nginx"] = fetch_all(
                [(f"http://127.0.0.1:{nginx_port}/artifact.bin", None)] * args.devices, size)
        server_port = free_port()
        server = http_server(static, server_port)
        try:
            floors["python -m http.server"] = fetch_all(
                [(f"http://127.0.0.1:{server_port}/artifact.bin", None)] * args.devices, size)
        finally:
            server.terminate()
            server.wait(30)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    print(f"delivery: {args.size_mb} MB to {args.devices} devices at once "
          f"({total_mb:.0f} MB in all)")
    print(f"  API (gunicorn)          {api_s:7.2f} s  {total_mb / api_s:8.0f} MB/s")
    for name, seconds in floors.items():
        print(f"  {name:<23} {seconds:7.2f} s  {total_mb / seconds:8.0f} MB/s   API takes "
              f"{api_s / seconds:.2f}x as long")
    print(f"  API memory: {idle_kb / 1024:.0f} MiB before, {memory.peak_kb / 1024:.0f} MiB "
          f"at its peak during the run")
    upload_mb_s, disk_mb_s = args.upload_mb / upload_s, args.upload_mb / disk_s
    ratio = upload_mb_s / disk_mb_s
    print(f"upload: {args.upload_mb} MB through the API {upload_s:.2f} s ({upload_mb_s:.0f} "
          f"MB/s); disk write + fsync {disk_s:.2f} s ({disk_mb_s:.0f} MB/s): "
          f"{ratio:.2f}x the disk ({'meets' if ratio >= 0.7 else 'does not meet'} the 0.7x "
          f"target); sha256 alone {args.upload_mb / hash_s:.0f} MB/s on this CPU")
    print(f"  every round, upload s: {' '.join(f'{s:.2f}' for s in uploads)}; "
          f"disk s: {' '.join(f'{s:.2f}' for s in disks)}")


if __name__ == "__main__":
    main()
