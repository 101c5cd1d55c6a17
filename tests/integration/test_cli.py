"""The dispatcher command: token and device administration against a real database."""

from __future__ import annotations

import json
import logging
import subprocess
import sys

import pytest

from dispatcher.fleet import tokens
from dispatcher_cli import build_parser, main


@pytest.fixture(autouse=True)
def keep_logging_as_it_was():
    """main() configures the root logger; give pytest's back afterwards."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.fixture
def cli(settings, monkeypatch, capsys):
    """Run ``dispatcher ARGS`` in this process against the test database; return its stdout."""
    monkeypatch.setenv("DATABASE_URL", settings.database_url)

    def run(*args: str) -> str:
        assert main(list(args)) == 0
        return capsys.readouterr().out

    return run


def test_token_create_list_and_revoke(cli):
    out = cli("token", "create", "--role", "viewer", "--name", "grafana")
    header, token = out.strip().splitlines()
    assert "role=viewer name=grafana" in header
    assert tokens.authenticate(token).kind == "viewer"

    listed = [json.loads(line) for line in cli("token", "list").splitlines()]
    record = next(r for r in listed if r["name"] == "grafana")
    assert record["revoked_at"] is None
    assert token not in json.dumps(listed)

    assert "revoked" in cli("token", "revoke", str(record["id"]))
    assert tokens.authenticate(token) is None


def test_revoking_an_unknown_token_is_a_clear_error(settings, monkeypatch, capsys):
    monkeypatch.setenv("DATABASE_URL", settings.database_url)
    assert main(["token", "revoke", "999999"]) == 1
    assert "token 999999 not found" in capsys.readouterr().err


def test_device_register_prints_uuid_and_a_working_token(cli, client, admin_headers):
    out = cli("device", "register", "--name", "pi-kitchen", "--type", "raspberry-pi",
              "--attr", "environment=production", "--attr", "site=berlin")
    lines = dict(line.split("=", 1) for line in out.splitlines() if line.startswith("JOBS_AGENT"))
    device_uuid, token = lines["JOBS_AGENT_DEVICE_UUID"], lines["JOBS_AGENT_TOKEN"]

    principal = tokens.authenticate(token)
    assert principal.kind == "device" and str(principal.device_uuid) == device_uuid
    device = client.get(f"/api/v1/devices/{device_uuid}", headers=admin_headers).get_json()
    assert device["device_name"] == "pi-kitchen"
    assert device["device_type"] == "raspberry-pi"
    assert device["attributes"] == {"environment": "production", "site": "berlin"}


def test_device_register_json_output(cli):
    device = json.loads(cli("device", "register", "--name", "pi-json", "--json"))
    assert device["device_name"] == "pi-json" and device["device_type"] == "generic"
    assert tokens.authenticate(device["token"]).kind == "device"


def test_bad_attribute_is_refused_before_anything_runs(capsys):
    with pytest.raises(SystemExit) as exit_info:
        build_parser().parse_args(["device", "register", "--name", "x", "--attr", "novalue"])
    assert exit_info.value.code == 2
    assert "expected key=value" in capsys.readouterr().err


@pytest.mark.parametrize("command", [
    [], ["migrate"], ["serve"], ["worker"], ["beat"], ["flower"], ["dev"], ["demo"],
    ["token", "create"], ["device", "register"],
])
def test_every_subcommand_has_help(command):
    result = subprocess.run([sys.executable, "-m", "dispatcher", *command, "--help"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage: dispatcher")
