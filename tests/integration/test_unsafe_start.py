"""Server commands refuse placeholder or short secrets, and AUTH_DISABLED beyond loopback."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from dispatcher.commands.secret_checks import refuse_unsafe_start
from dispatcher.config import Settings
from dispatcher.errors import Misconfigured

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
STRONG = "s3cr3t-" + "x" * 40


def env_example() -> dict[str, str]:
    text = (DEPLOY / ".env.example").read_text()
    return dict(re.findall(r"^([A-Z_]+)=(.*)$", text, re.MULTILINE))


def run_dispatcher(args: list[str], **env: str) -> subprocess.CompletedProcess:
    base = {"PATH": "/usr/bin:/bin", "DATABASE_URL": "postgresql://postgres@127.0.0.1:5432/x"}
    return subprocess.run([sys.executable, "-m", "dispatcher", *args], env={**base, **env},
                          capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("command", [["serve", "--bind", "127.0.0.1:0"], ["worker"], ["beat"],
                                     ["flower"]])
@pytest.mark.parametrize("admin_token", ["change-me-to-a-long-random-string", "short"])
def test_server_commands_refuse_a_weak_admin_token(command, admin_token):
    result = run_dispatcher(command, ADMIN_TOKEN=admin_token)
    assert result.returncode == 1, result.stderr
    assert "refusing to start: ADMIN_TOKEN" in result.stderr


@pytest.mark.parametrize("secret_key", ["change-me-to-a-long-random-string", "short"])
def test_server_commands_refuse_a_weak_secret_key(secret_key):
    result = run_dispatcher(["serve", "--bind", "127.0.0.1:0"], SECRET_KEY=secret_key)
    assert result.returncode == 1, result.stderr
    assert "refusing to start: SECRET_KEY" in result.stderr


def test_the_env_example_placeholders_are_all_refused():
    values = env_example()
    settings = Settings(
        admin_token=values["ADMIN_TOKEN"],
        database_url=f"postgresql://device_jobs:{values['POSTGRES_PASSWORD']}@postgres/device_jobs",
        mqtt_url=f"mqtt://dispatcher:{values['MQTT_SERVER_PASSWORD']}@mosquitto:1883",
    )
    with pytest.raises(Misconfigured) as refused:
        refuse_unsafe_start(settings, {"FLOWER_BASIC_AUTH": values["FLOWER_BASIC_AUTH"]},
                            flower=True)
    for where in ("ADMIN_TOKEN", "DATABASE_URL password", "MQTT_URL password",
                  "FLOWER_BASIC_AUTH password"):
        assert where in refused.value.message


def test_strong_secrets_and_no_secrets_start():
    refuse_unsafe_start(Settings(), {}, flower=True, api_bind="0.0.0.0:8000")
    strong = Settings(admin_token=STRONG, database_url=f"postgresql://u:{STRONG}@db/x",
                      mqtt_url=f"mqtt://d:{STRONG}@broker:1883")
    refuse_unsafe_start(strong, {"FLOWER_BASIC_AUTH": f"admin:{STRONG}"}, flower=True,
                        api_bind="0.0.0.0:8000")


@pytest.mark.parametrize("bind, allowed", [
    ("127.0.0.1:8000", True), ("localhost:8000", True), ("[::1]:8000", True),
    ("unix:/run/api.sock", True), ("0.0.0.0:8000", False), ("10.0.0.5:8000", False),
    ("[::]:8000", False),
])
def test_auth_disabled_is_refused_unless_the_api_listens_on_loopback(bind, allowed):
    settings = Settings(auth_disabled=True)
    if allowed:
        refuse_unsafe_start(settings, {}, api_bind=bind)
    else:
        with pytest.raises(Misconfigured, match="AUTH_DISABLED"):
            refuse_unsafe_start(settings, {}, api_bind=bind)


def test_serve_refuses_auth_disabled_on_all_interfaces():
    result = run_dispatcher(["serve", "--bind", "0.0.0.0:0"], AUTH_DISABLED="1")
    assert result.returncode == 1
    assert "AUTH_DISABLED" in result.stderr


def test_compose_publishes_flower_and_the_api_on_loopback_only():
    services = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())["services"]
    for name in ("api", "flower"):
        for port in services[name]["ports"]:
            assert str(port).startswith("127.0.0.1:"), (name, port)
