"""The device's inventory: facts it knows about itself, sent to the server when they change.

Built-in facts (os-release, kernel, architecture, hostname, versions, addresses, free disk of
``/``, memory, the board model from the device tree) plus whatever the executables in the
inventory directory print: ``key=value`` lines, Mender's format, a repeated key making a list
and a dotted key a nested object (``os.codename=bookworm``). Collected at start and every
``inventory_interval_s``; sent (``PUT /api/v1/devices/:uuid/inventory``, replace) only when
they differ from what was last sent, which is remembered across restarts, so a fleet whose
facts stay the same sends nothing. Runs on Python 3.9.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import platform
import shutil
import socket
import struct
import subprocess
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agent import __version__
from agent.server_api import AgentError, DeviceApi
from schemas.inventory import MAX_INVENTORY_LEAVES, REPLACE, count_leaves

log = logging.getLogger(__name__)

SCRIPT_TIMEOUT_S = 30.0
SCRIPT_OUTPUT_MAX_BYTES = 16 * 1024
# After a failed send, try again this soon rather than a whole interval later.
RETRY_AFTER_S = 60.0
SENT_FILE = "inventory.sent"
_SIOCGIFADDR = 0x8915


@dataclass(frozen=True)
class FactSources:
    """Where the built-in facts are read (other roots in tests)."""

    os_release: tuple = ("/etc/os-release", "/usr/lib/os-release")
    device_tree_model: str = "/proc/device-tree/model"
    meminfo: str = "/proc/meminfo"
    disk: str = "/"


def collect_inventory(script_dir: Path, sources: FactSources = FactSources()) -> dict[str, Any]:
    """The built-in facts with the scripts' on top (a script may name a fact more precisely)."""
    facts = builtin_facts(sources)
    for key, value in script_facts(script_dir).items():
        if isinstance(value, dict) and isinstance(facts.get(key), dict):
            facts[key] = {**facts[key], **value}
        else:
            facts[key] = value
    return facts


def builtin_facts(sources: FactSources = FactSources()) -> dict[str, Any]:
    facts: dict[str, Any] = {
        "kernel": platform.release(),
        "arch": platform.machine(),
        "hostname": socket.gethostname(),
        "agent_version": __version__,
        "python_version": platform.python_version(),
    }
    release = _os_release(sources.os_release)
    os_facts = {name.lower(): release[name] for name in ("ID", "VERSION_ID", "PRETTY_NAME")
                if name in release}
    if os_facts:
        facts["os"] = os_facts
    addresses = _ip_addresses()
    if addresses:
        facts["ip_addresses"] = addresses
    with contextlib.suppress(OSError):
        facts["disk_free_mb"] = shutil.disk_usage(sources.disk).free // (1024 * 1024)
    memory_kb = _meminfo_total_kb(sources.meminfo)
    if memory_kb is not None:
        facts["memory_mb"] = memory_kb // 1024
    try:
        model = Path(sources.device_tree_model).read_bytes().rstrip(b"\x00").decode(
            "utf-8", "replace").strip()
    except OSError:
        model = ""
    if model:
        facts["model"] = model
    return facts


def script_facts(script_dir: Path) -> dict[str, Any]:
    """What the executables in ``script_dir`` print, in name order; a script that fails or
    hangs is logged and left out."""
    facts: dict[str, Any] = {}
    try:
        scripts = sorted(p for p in script_dir.iterdir()
                         if p.is_file() and os.access(p, os.X_OK))
    except OSError:
        return facts
    for script in scripts:
        try:
            done = subprocess.run([str(script)], stdin=subprocess.DEVNULL, capture_output=True,
                                  timeout=SCRIPT_TIMEOUT_S, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            log.warning("inventory script failed script=%s error=%s", script.name, exc)
            continue
        if done.returncode != 0:
            log.warning("inventory script failed script=%s exit_code=%d", script.name,
                        done.returncode)
            continue
        text = done.stdout[:SCRIPT_OUTPUT_MAX_BYTES].decode("utf-8", "replace")
        _add_lines(facts, text)
    return facts


def parse_key_values(text: str) -> dict[str, Any]:
    """``key=value`` lines as facts: a repeated key is a list, a dotted key a nested object;
    lines without ``=`` or with an unusable key are skipped."""
    facts: dict[str, Any] = {}
    _add_lines(facts, text)
    return facts


def _add_lines(facts: dict[str, Any], text: str) -> None:
    seen: dict[tuple, int] = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        key, value = key.strip(), value.strip()
        path = tuple(key.split("."))
        if not sep or not all(path) or any(part.startswith("$") for part in path):
            continue
        node = facts
        for part in path[:-1]:
            child = node.get(part)
            if not isinstance(child, dict):
                child = node[part] = {}
            node = child
        last = path[-1]
        seen[path] = seen.get(path, 0) + 1
        if seen[path] == 1:
            node[last] = value
        elif seen[path] == 2:
            node[last] = [node[last], value]
        else:
            node[last].append(value)


def fingerprint(facts: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(facts, sort_keys=True).encode()).hexdigest()


class InventoryReporter:
    """Collects the facts now and every ``interval_s``; sends those that changed."""

    def __init__(self, api: DeviceApi, script_dir: Path, state_dir: Path, interval_s: float,
                 sources: FactSources = FactSources()) -> None:
        self.api = api
        self.script_dir = script_dir
        self.sent_file = state_dir / SENT_FILE
        self.interval_s = interval_s
        self.sources = sources
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self.run, name="inventory", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def run(self) -> None:
        while not self._stop.is_set():
            sent = self.report_if_changed()
            self._stop.wait(self.interval_s if sent is not None else RETRY_AFTER_S)

    def report_if_changed(self) -> bool | None:
        """Send the facts when they changed: True when sent, False when unchanged, None when
        the server could not take them (retried soon)."""
        facts = collect_inventory(self.script_dir, self.sources)
        if count_leaves(facts) > MAX_INVENTORY_LEAVES:
            log.warning("inventory has %d keys, over the server's %d: sending the built-in "
                        "facts only", count_leaves(facts), MAX_INVENTORY_LEAVES)
            facts = builtin_facts(self.sources)
        digest = fingerprint(facts)
        if digest == self._last_sent():
            return False
        try:
            answer = self.api.report_inventory({"data": facts, "mode": REPLACE})
        except AgentError as exc:
            log.warning("inventory not sent: %s", exc)
            return None
        if not answer.ok:
            log.warning("inventory refused status=%d message=%s", answer.status,
                        answer.body.get("message"))
            return None
        self._remember(digest)
        log.info("inventory sent keys=%d", count_leaves(facts))
        return True

    def _last_sent(self) -> str:
        try:
            return self.sent_file.read_text().strip()
        except OSError:
            return ""

    def _remember(self, digest: str) -> None:
        try:
            self.sent_file.parent.mkdir(parents=True, exist_ok=True)
            partial = self.sent_file.with_suffix(".partial")
            partial.write_text(digest)
            partial.replace(self.sent_file)
        except OSError as exc:
            log.warning("cannot remember the inventory sent: %s", exc)


def _os_release(paths: tuple) -> dict[str, str]:
    for path in paths:
        try:
            text = Path(path).read_text()
        except OSError:
            continue
        found = {}
        for line in text.splitlines():
            key, sep, value = line.partition("=")
            if sep and key.strip() and not key.startswith("#"):
                found[key.strip()] = value.strip().strip("'\"")
        return found
    return {}


def _meminfo_total_kb(path: str) -> int | None:
    try:
        for line in Path(path).read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return None


def _ip_addresses() -> list[str]:
    """The IPv4 address of each interface but loopback (Linux ioctl; empty elsewhere)."""
    try:
        import fcntl
    except ImportError:
        return []
    addresses = []
    for _, name in socket.if_nameindex():
        if name == "lo":
            continue
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
                packed = fcntl.ioctl(sock.fileno(), _SIOCGIFADDR,
                                     struct.pack("256s", name[:15].encode()))
        except OSError:
            continue
        addresses.append(socket.inet_ntoa(packed[20:24]))
    return sorted(set(addresses))
