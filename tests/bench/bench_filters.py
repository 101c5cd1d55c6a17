"""Filter benchmark: a fleet with realistic inventories, counted, executed on and searched with
the filter language, each figure next to a floor measured in the same run.

In a fresh database of ``--devices`` devices (20 sites, 2 environments, 100 racks as
attributes; os, version, model, arch, kernel, agent version and a per-device free disk as
inventory):

1. An indexed filter (exact keys and ``$in``, served by the GIN indexes): the execute
   preview's count and ``create_execution`` (count + the job row), p50/p95 over
   ``--samples``. Target: p95 under 50 ms.
2. A range-only filter (``inventory.disk_free_mb $gte``, matching 98 % of the fleet, counted
   by an index-only scan of ``device_inventory_numbers``): its count, against the floor of one
   sequential scan of the devices table counting rows (``count(*)`` with index scans off), and
   one that also reads each inventory. Target: within 2x the bare scan.
3. Unchanged inventories: ``--agents`` agents collect their facts again; how many send
   (target: none, so the server does no work).
4. A changed inventory for ``--changed`` devices applied through ``report_inventory`` (one
   transaction per device, as the API does), against the floor of the same number of bare
   one-row ``UPDATE … SET inventory`` statements, each its own transaction, the two
   interleaved in rounds. Target: within 2x.

    .venv/bin/python tests/bench/bench_filters.py [--devices 1000000] [--samples 30]
        [--agents 100000] [--changed 10000] [--template NAME]

``--template NAME`` loads the fleet once into database NAME and copies it for every run.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import psycopg
from bench_support import bench_database, kept_template, vacuum_analyze

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agent import inventory as agent_inventory  # noqa: E402
from agent.server_api import ApiAnswer  # noqa: E402
from dispatcher import db  # noqa: E402
from dispatcher.config import Settings  # noqa: E402
from dispatcher.fleet.inventory import report_inventory  # noqa: E402
from dispatcher.jobs.create import create_execution  # noqa: E402
from dispatcher.jobs.targeting import count_target_devices, parse_target  # noqa: E402

INDEXED_TARGET_MS = 50.0
TARGET_RATIO = 2.0
SITES = 20
FLEET_SQL = """
INSERT INTO devices (uuid, device_name, device_type, attributes, inventory, token_hash,
                     inventory_updated_at, last_seen_at)
SELECT md5('filter-device-' || i)::uuid, 'dev-' || i, 'raspberry-pi',
       jsonb_build_object('site', 'site-' || (i %% {sites}),
                          'environment', CASE WHEN i %% 10 = 0 THEN 'staging'
                                              ELSE 'production' END,
                          'rack', 'r' || (i %% 100)),
       jsonb_build_object(
           'os', jsonb_build_object('id', 'debian', 'version_id', (11 + i %% 3)::text,
                                    'pretty_name', 'Debian GNU/Linux ' || (11 + i %% 3)),
           'kernel', '6.1.0-' || (i %% 7) || '-arm64', 'arch', 'aarch64',
           'hostname', 'dev-' || i, 'agent_version', '1.' || (i %% 3) || '.0',
           'python_version', '3.11.2', 'ip_addresses', jsonb_build_array('10.0.0.1'),
           'disk_free_mb', (hashtext('disk' || i) & 32767), 'memory_mb', 3793,
           'model', (ARRAY['Raspberry Pi 4 Model B', 'Raspberry Pi 3 Model B+',
                           'Raspberry Pi 5', 'Compute Module 4'])[1 + i %% 4]),
       sha256(convert_to('filter-token-' || i, 'UTF8')), now(), now()
  FROM generate_series(%(first)s, %(last)s) AS i
"""
INDEXED = {"device_type": "raspberry-pi", "site": "site-4",
           "inventory.os.version_id": {"$in": ["12", "13"]},
           "inventory.model": "Raspberry Pi 4 Model B"}
RANGE = {"inventory.disk_free_mb": {"$gte": 500}}
DOCUMENT = {"version": "1.0", "steps": [
    {"name": "s", "type": "runCommand", "input": {"command": "true"}}]}


def timed_ms(run) -> float:
    started = time.perf_counter()
    run()
    return (time.perf_counter() - started) * 1000


def percentiles(samples: list[float]) -> str:
    ordered = sorted(samples)
    p95 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))]
    return f"p50 {statistics.median(ordered):8.1f} ms  p95 {p95:8.1f} ms"


def p95(samples: list[float]) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))]


def load_fleet(url: str, devices: int) -> float:
    started = time.monotonic()
    batch = 100_000
    with psycopg.connect(url, autocommit=True) as conn:
        for first in range(1, devices + 1, batch):
            conn.execute(FLEET_SQL.format(sites=SITES),
                         {"first": first, "last": min(devices, first + batch - 1)})
    vacuum_analyze(url)
    return time.monotonic() - started


def bench_indexed(settings: Settings, samples: int) -> tuple[float, float, int]:
    target = parse_target("group", None, INDEXED)
    matched = count_target_devices(target)
    counts = [timed_ms(lambda: count_target_devices(target)) for _ in range(samples)]
    body = {"job_name": "bench", "job_document": DOCUMENT, "target_type": "group",
            "target_filter": INDEXED, "parameters": {}}
    executes = [timed_ms(lambda: create_execution(body, "bench", settings))
                for _ in range(samples)]
    print(f"indexed filter, {matched} devices match")
    print(f"  preview count      {percentiles(counts)}")
    print(f"  execute (row+count){percentiles(executes)}")
    return p95(counts), p95(executes), matched


def bench_range(url: str, samples: int) -> tuple[float, float, float]:
    target = parse_target("group", None, RANGE)
    count_target_devices(target)
    ranged = [timed_ms(lambda: count_target_devices(target)) for _ in range(samples)]
    with psycopg.connect(url, autocommit=True) as conn:
        for setting in ("enable_indexscan", "enable_indexonlyscan", "enable_bitmapscan"):
            conn.execute(f"SET {setting} = off")
        bare = [timed_ms(lambda: conn.execute("SELECT count(*) FROM devices").fetchone())
                for _ in range(samples)]
        reading = [timed_ms(lambda: conn.execute(
            "SELECT count(*) FROM devices WHERE jsonb_typeof(inventory) = 'object'").fetchone())
            for _ in range(samples)]
    print("range-only filter (inventory.disk_free_mb $gte 500)")
    print(f"  count              {percentiles(ranged)}")
    print(f"  floor: seq scan    {percentiles(bare)}")
    print(f"  floor: seq scan reading inventory {percentiles(reading)}")
    return statistics.median(ranged), statistics.median(bare), statistics.median(reading)


class CountingApi:
    def __init__(self) -> None:
        self.sent = 0

    def report_inventory(self, body: dict) -> ApiAnswer:
        self.sent += 1
        return ApiAnswer(200, {})


def bench_unchanged_agents(agents: int, state_dir: Path) -> int:
    """Every agent's first report is sent; then each collects again unchanged."""
    facts = agent_inventory.builtin_facts()
    agent_inventory.collect_inventory = lambda *args: dict(facts)  # type: ignore[assignment]
    api = CountingApi()
    reporters = [agent_inventory.InventoryReporter(api, state_dir, state_dir / str(i), 3600)  # type: ignore[arg-type]
                 for i in range(agents)]
    for reporter in reporters:
        reporter.report_if_changed()
    first = api.sent
    started = time.monotonic()
    for reporter in reporters:
        reporter.report_if_changed()
    print(f"unchanged inventory: {agents} agents collected again in "
          f"{time.monotonic() - started:.1f} s; sent {api.sent - first} "
          f"(first round sent {first})")
    return api.sent - first


def bench_changed(url: str, changed: int, rounds: int = 5) -> tuple[float, float]:
    """Devices reporting a change, against bare one-row UPDATEs, interleaved in ``rounds``
    (the machine's noise falls on both alike)."""
    with psycopg.connect(url, autocommit=True) as conn:
        uuids = [r[0] for r in conn.execute(
            "SELECT uuid FROM devices ORDER BY uuid LIMIT %s", (2 * changed,)).fetchall()]
    through, bare = uuids[:changed], uuids[changed:]
    now = datetime.now(UTC)
    applied_s = floor_s = 0.0
    step = -(-changed // rounds)
    with psycopg.connect(url, autocommit=True) as conn:
        for first in range(0, changed, step):
            started = time.monotonic()
            for i, device in enumerate(through[first:first + step], first):
                report_inventory(device, {"disk_free_mb": 100 + i, "os": {"version_id": "13"}},
                                 "merge", now)
            applied_s += time.monotonic() - started
            started = time.monotonic()
            for i, device in enumerate(bare[first:first + step], first):
                conn.execute("UPDATE devices SET inventory = inventory || %s::jsonb "
                             "WHERE uuid = %s",
                             (psycopg.types.json.Jsonb({"disk_free_mb": 100 + i}), device))
            floor_s += time.monotonic() - started
    print(f"changed inventory of {changed} devices: report_inventory {applied_s:.1f} s, "
          f"floor (bare one-row UPDATEs) {floor_s:.1f} s")
    return applied_s, floor_s


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--devices", type=int, default=1_000_000)
    parser.add_argument("--samples", type=int, default=30)
    parser.add_argument("--agents", type=int, default=100_000)
    parser.add_argument("--changed", type=int, default=10_000)
    parser.add_argument("--template", metavar="NAME",
                        help="copy the fleet from database NAME, loading it there first if "
                             "it does not exist (kept between runs; a 1M fleet loads slowly)")
    args = parser.parse_args()
    name = f"bench_filters_{uuid.uuid4().hex[:8]}"
    failures = []
    template = (kept_template(args.template, lambda url: load_fleet(url, args.devices))
                if args.template else None)
    with bench_database(name, template=template) as url:
        settings = Settings(database_url=url, admin_token="bench-admin-token-0123456789abcdef")
        db.configure(settings)
        if template:
            vacuum_analyze(url)
            print(f"{args.devices} devices copied from {template}")
        else:
            print(f"{args.devices} devices loaded in {load_fleet(url, args.devices):.0f} s")
        count_p95, execute_p95, _ = bench_indexed(settings, args.samples)
        if max(count_p95, execute_p95) > INDEXED_TARGET_MS:
            failures.append(f"indexed filter p95 over {INDEXED_TARGET_MS} ms")
        ranged, bare, reading = bench_range(url, args.samples)
        print(f"  ratio to the bare scan {ranged / bare:.2f}x, to the reading scan "
              f"{ranged / reading:.2f}x (target {TARGET_RATIO}x the bare scan)")
        if ranged > TARGET_RATIO * bare:
            failures.append("range filter over 2x the sequential scan")
        import tempfile

        with tempfile.TemporaryDirectory() as state:
            if bench_unchanged_agents(args.agents, Path(state)):
                failures.append("agents sent unchanged inventories")
        applied, floor = bench_changed(url, args.changed)
        print(f"  ratio {applied / floor:.2f}x (target {TARGET_RATIO}x)")
        if applied > TARGET_RATIO * floor:
            failures.append("changed inventory over 2x the bare UPDATEs")
        db.close()
    print("FAILED: " + "; ".join(failures) if failures else "all targets met")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
