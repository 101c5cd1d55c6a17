"""Portal benchmark: server time of the executions dashboard with 10,000 executions and of an
execution's page with 100,000 device rows, next to /healthz in the same run.

A fresh database gets a fleet of 100,000 devices, 10,000 executions and one execution with a
row for every device (mixed statuses), all made in SQL; the API runs under gunicorn as
deployed. A signed-in session then GETs each page sequentially; the figures are wall time per
request over loopback (so /healthz shows the floor). Target: p95 under 100 ms for each page.

    .venv/bin/python tests/bench/bench_portal.py [--requests 200]
"""

from __future__ import annotations

import argparse
import http.cookiejar
import re
import statistics
import sys
import time
import urllib.parse
import urllib.request
import uuid
from pathlib import Path

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/: the process helpers

from bench_support import (  # noqa: E402
    ADMIN_TOKEN,
    JOB_DOCUMENT,
    bench_database,
    device_uuid,
    gunicorn,
    insert_job,
    register_fleet,
    vacuum_analyze,
)
from processes import free_port  # noqa: E402

DEVICES = 100_000
EXECUTIONS = 10_000
MANY_EXECUTIONS_SQL = """
INSERT INTO job_executions (job_id, job_name, job_document, target_type, status, total_devices,
                            fanout_status, started_at, completed_at, created_by)
SELECT md5('bench-job-' || i)::uuid, 'bench-job-' || i, %(job_document)s, 'all',
       (ARRAY['SUCCEEDED', 'FAILED', 'CANCELED', 'SUCCEEDED'])[1 + i %% 4], 10, 'DONE',
       now() - interval '1 hour', now() - interval '50 minutes', 'admin:bench'
  FROM generate_series(1, %(executions)s) AS i
"""
BIG_JOB_ROWS_SQL = """
INSERT INTO device_job_status (job_id, device_uuid, status, started_at, completed_at, exit_code)
SELECT %(job_id)s, md5('bench-device-' || i)::uuid,
       (ARRAY['SUCCEEDED', 'SUCCEEDED', 'FAILED', 'IN_PROGRESS', 'QUEUED'])[1 + i %% 5],
       now() - interval '5 minutes', NULL, NULL
  FROM generate_series(1, %(devices)s) AS i
"""


def percentiles(samples: list[float]) -> str:
    ordered = sorted(samples)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return f"p50 {statistics.median(ordered) * 1000:6.1f} ms   p95 {p95 * 1000:6.1f} ms"


def signed_in_opener(base_url: str) -> urllib.request.OpenerDirector:
    opener = urllib.request.build_opener(
        urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))
    page = opener.open(f"{base_url}/portal/login").read().decode()
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    form = urllib.parse.urlencode({"token": ADMIN_TOKEN, "csrf_token": csrf}).encode()
    answer = opener.open(f"{base_url}/portal/login", form)
    assert "/portal/executions" in answer.geturl(), "sign-in failed"
    return opener


def timed(opener, url: str, requests: int) -> list[float]:
    opener.open(url).read()  # warm: the first request prepares the statements
    samples = []
    for _ in range(requests):
        started = time.perf_counter()
        with opener.open(url) as response:
            response.read()
            assert response.status == 200, url
        samples.append(time.perf_counter() - started)
    return samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=200)
    args = parser.parse_args()
    with bench_database("device_jobs_bench_portal") as url:
        print(f"loading {DEVICES} devices, {EXECUTIONS} executions, one with {DEVICES} rows…")
        register_fleet(url, DEVICES)
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(MANY_EXECUTIONS_SQL, {"job_document": JOB_DOCUMENT,
                                               "executions": EXECUTIONS})
        big_job = uuid.uuid4()
        insert_job(url, big_job, "bench-big-job", "IN_PROGRESS", DEVICES)
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(BIG_JOB_ROWS_SQL, {"job_id": big_job, "devices": DEVICES})
        vacuum_analyze(url)
        with gunicorn(url, free_port()) as base:
            opener = signed_in_opener(base)
            pages = {
                "/healthz": "/healthz",
                "dashboard": "/portal/executions",
                "dashboard, status filter, page 40": "/portal/executions?status=FAILED&page=40",
                "dashboard live fragment": "/portal/executions/live",
                "execution page (100k devices)": f"/portal/executions/{big_job}",
                "execution, FAILED, page 400": f"/portal/executions/{big_job}?status=FAILED"
                                               "&page=400",
                "execution live fragment": f"/portal/executions/{big_job}/live",
                "execution, device search (many match)": f"/portal/executions/{big_job}"
                                                         "?device=bench-1",
                "execution, device search (one match)": f"/portal/executions/{big_job}"
                                                        "?device=bench-77777",
                "device page": f"/portal/devices/{device_uuid(7)}",
            }
            print(f"{args.requests} sequential requests each, signed in:")
            for name, path in pages.items():
                print(f"  {name:38s} {percentiles(timed(opener, base + path, args.requests))}")


if __name__ == "__main__":
    main()
