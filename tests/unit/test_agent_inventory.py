"""The agent's inventory: built-in facts, inventory.d scripts, and sending only what changed."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent import inventory
from agent.inventory import FactSources, InventoryReporter, collect_inventory, parse_key_values
from agent.server_api import ApiAnswer, ServerUnavailable


class RecordingApi:
    """Takes inventory reports as the server would, or fails as told."""

    def __init__(self) -> None:
        self.sent: list[dict] = []
        self.answer = ApiAnswer(200, {})
        self.down = False

    def report_inventory(self, body: dict) -> ApiAnswer:
        if self.down:
            raise ServerUnavailable("PUT /inventory: connection refused")
        self.sent.append(body)
        return self.answer


def sources(tmp_path: Path) -> FactSources:
    (tmp_path / "os-release").write_text(
        'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nID=debian\nVERSION_ID="12"\n# x=y\n')
    (tmp_path / "model").write_bytes(b"Raspberry Pi 4 Model B Rev 1.4\x00")
    (tmp_path / "meminfo").write_text("MemTotal:        3884096 kB\nMemFree: 1 kB\n")
    return FactSources(os_release=(str(tmp_path / "missing"), str(tmp_path / "os-release")),
                       device_tree_model=str(tmp_path / "model"),
                       meminfo=str(tmp_path / "meminfo"), disk=str(tmp_path))


def script(directory: Path, name: str, body: str, executable: bool = True) -> None:
    directory.mkdir(exist_ok=True)
    path = directory / name
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(0o755 if executable else 0o644)


def test_builtin_facts(tmp_path):
    facts = collect_inventory(tmp_path / "no-scripts", sources(tmp_path))
    assert facts["os"] == {"id": "debian", "version_id": "12",
                           "pretty_name": "Debian GNU/Linux 12 (bookworm)"}
    assert facts["model"] == "Raspberry Pi 4 Model B Rev 1.4"
    assert facts["memory_mb"] == 3793
    assert isinstance(facts["disk_free_mb"], int)
    for key in ("kernel", "arch", "hostname", "agent_version", "python_version"):
        assert facts[key]


def test_key_value_lines_as_mender_writes_them():
    assert parse_key_values("a=1\nb = two words \nrole=x\nrole=y\nrole=z\nos.codename=trixie\n"
                            "no equals sign\n=empty key\n$bad=1\na..b=1\nurl=http://h/?q=1\n") == {
        "a": "1", "b": "two words", "role": ["x", "y", "z"], "os": {"codename": "trixie"},
        "url": "http://h/?q=1"}


def test_scripts_add_to_the_builtin_facts_in_name_order(tmp_path):
    scripts = tmp_path / "inventory.d"
    script(scripts, "20-late", "echo site=late\n")
    script(scripts, "10-early", "echo site=early\necho os.codename=bookworm\n")
    script(scripts, "30-failing", "echo site=broken\nexit 3\n")
    script(scripts, "40-not-executable", "echo site=never\n", executable=False)
    facts = collect_inventory(scripts, sources(tmp_path))
    assert facts["site"] == "late"
    assert facts["os"]["codename"] == "bookworm" and facts["os"]["id"] == "debian"


def test_only_changed_facts_are_sent_and_remembered_across_restarts(tmp_path, monkeypatch):
    facts = {"rack": "r7"}
    monkeypatch.setattr(inventory, "collect_inventory", lambda *args: dict(facts))
    api = RecordingApi()
    reporter = InventoryReporter(api, tmp_path / "d", tmp_path / "state", 3600)  # type: ignore[arg-type]
    assert reporter.report_if_changed() is True
    assert reporter.report_if_changed() is False
    restarted = InventoryReporter(api, tmp_path / "d", tmp_path / "state", 3600)  # type: ignore[arg-type]
    assert restarted.report_if_changed() is False
    facts["rack"] = "r8"
    assert restarted.report_if_changed() is True
    assert api.sent == [{"data": {"rack": "r7"}, "mode": "replace"},
                        {"data": {"rack": "r8"}, "mode": "replace"}]


@pytest.mark.parametrize("failure", ["down", "refused"])
def test_a_report_the_server_did_not_take_is_sent_again(tmp_path, monkeypatch, failure):
    monkeypatch.setattr(inventory, "collect_inventory", lambda *args: {"rack": "r7"})
    api = RecordingApi()
    if failure == "down":
        api.down = True
    else:
        api.answer = ApiAnswer(400, {"message": "bad"})
    reporter = InventoryReporter(api, tmp_path / "d", tmp_path / "state", 3600)  # type: ignore[arg-type]
    assert reporter.report_if_changed() is None
    api.down, api.answer = False, ApiAnswer(200, {})
    assert reporter.report_if_changed() is True
