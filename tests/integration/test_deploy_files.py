"""The deployment files hold together.

Docker cannot run on the machines this suite runs on, so the compose file is checked by
parsing it: every server command must be a real `dispatcher` subcommand with valid options,
every long-running service has a health check, and every file it mounts or copies exists.
The systemd units' commands are checked the same way. The Mosquitto ACL is checked for real,
with the mosquitto broker of this machine.
"""

from __future__ import annotations

import dataclasses
import importlib
import os
import pwd
import re
import shlex
import shutil
import socket
import subprocess
import sys
import threading
import time
import tomllib
import uuid
from pathlib import Path
from urllib.parse import urlsplit

import paho.mqtt.client as mqtt
import pytest
import yaml

from dispatcher.config import Settings
from dispatcher_cli import build_parser

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
COMPOSE = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]
OUR_IMAGE = "device-jobs:latest"
SCRIPTS = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
ONE_SHOT = {"migrate"}
# Made by the operator with mosquitto_passwd (README, "Production deployment"); never committed.
OPERATOR_FILES = {DEPLOY / "mosquitto" / "passwd", DEPLOY / "mosquitto" / "passwd-server"}


def assert_project_command(argv: list[str]) -> None:
    """``argv`` runs one of the project's console scripts with arguments its parser accepts."""
    program = Path(argv[0]).name
    assert program in SCRIPTS, f"{program} is not a console script of this project"
    module_name, _, _ = SCRIPTS[program].partition(":")
    module = importlib.import_module(module_name)
    if hasattr(module, "build_parser"):
        try:
            module.build_parser().parse_args(argv[1:])
        except SystemExit as exc:
            pytest.fail(f"{shlex.join(argv)} is refused by {program}'s parser (exit {exc.code})")


def server_services() -> dict[str, dict]:
    return {name: s for name, s in SERVICES.items() if s.get("image") == OUR_IMAGE}


def test_compose_runs_every_server_process_from_one_image():
    assert set(server_services()) == {"migrate", "api", "worker", "beat", "flower"}
    assert {"postgres", "redis", "rabbitmq", "mosquitto"} <= set(SERVICES)
    build = SERVICES["api"]["build"]
    assert (DEPLOY / build["context"] / build["dockerfile"]).is_file()


@pytest.mark.parametrize("name", ["migrate", "api", "worker", "beat", "flower"])
def test_compose_commands_are_real_dispatcher_subcommands(name):
    command = SERVICES[name]["command"]
    assert command[0] == "dispatcher"
    assert_project_command(command)


def test_compose_carries_tasks_on_its_rabbitmq_with_durable_data():
    rabbitmq = SERVICES["rabbitmq"]
    assert any(v.endswith(":/var/lib/rabbitmq") for v in rabbitmq["volumes"])
    user = rabbitmq["environment"]["RABBITMQ_DEFAULT_USER"]
    for name, service in server_services().items():
        broker = urlsplit(re.sub(r"\$\{[^}]*\}", "secret",
                                 service["environment"]["CELERY_BROKER_URL"]))
        assert (broker.scheme, broker.hostname, broker.username) == ("amqp", "rabbitmq", user)
        if name not in ONE_SHOT:
            assert service["depends_on"]["rabbitmq"]["condition"] == "service_healthy"


def test_every_long_running_service_has_a_health_check():
    for name, service in SERVICES.items():
        if name not in ONE_SHOT:
            assert service.get("healthcheck", {}).get("test"), f"{name} has no health check"


def test_server_processes_start_after_a_successful_migration():
    for name, service in server_services().items():
        if name in ONE_SHOT:
            continue
        assert service["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    assert SERVICES["migrate"]["restart"] == "no"
    assert SERVICES["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"


def test_api_and_worker_share_the_metrics_directory():
    for name in ("api", "worker"):
        service = SERVICES[name]
        mount = next(v for v in service["volumes"] if v.startswith("metrics:"))
        assert mount.split(":")[1] == service["environment"]["PROMETHEUS_MULTIPROC_DIR"]


def test_files_mounted_and_copied_exist():
    for service in SERVICES.values():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                path = (DEPLOY / source).resolve()
                assert path in OPERATOR_FILES or path.exists(), f"{source} is missing"
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    for source in re.findall(r"^COPY\s+(.+)\s+\S+$", dockerfile, re.MULTILINE):
        for path in source.split():
            assert (ROOT / path).exists(), f"Dockerfile copies {path}, which does not exist"


def test_the_image_holds_everything_the_dispatcher_command_imports():
    # The command composes the server's commands and the operator's (dispatcher_cli, client).
    copied = set(re.findall(r"^COPY\s+(\S+)\s+\S+$", (DEPLOY / "Dockerfile").read_text(),
                            re.MULTILINE))
    setuptools = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    shipped = {f"{module}.py" for module in setuptools["py-modules"]}
    shipped |= {pattern.rstrip("*") for pattern in setuptools["packages"]["find"]["include"]}
    assert shipped - copied == set()


def unit_commands() -> list[tuple[str, list[str]]]:
    units = sorted(DEPLOY.rglob("*.service"))
    assert {u.name for u in units} >= {
        "device-jobs-api.service", "device-jobs-worker.service", "device-jobs-beat.service"
    }
    commands = []
    for unit in units:
        for line in unit.read_text().splitlines():
            key, _, value = line.partition("=")
            if key in ("ExecStart", "ExecStartPre"):
                commands.append((unit.name, shlex.split(value.lstrip("-+!@"))))
    return commands


def test_systemd_units_run_real_project_commands():
    commands = unit_commands()
    assert {unit for unit, _ in commands} >= {
        "device-jobs-api.service", "device-jobs-worker.service", "device-jobs-beat.service"
    }
    for _, argv in commands:
        assert_project_command(argv)


def test_gunicorn_config_loads(tmp_path):
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    result = subprocess.run(
        [sys.executable, "-m", "gunicorn", "--check-config", "-c", str(DEPLOY / "gunicorn.conf.py"),
         "api.app:create_app()"], capture_output=True, text=True, env=env, timeout=60, cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr


def test_every_agent_setting_is_in_the_readme():
    from agent.config import FIELDS, env_name

    readme = (ROOT / "README.md").read_text()
    for name in FIELDS:
        assert f"`{env_name(name)}`" in readme, f"{env_name(name)} not in the README"


def test_every_setting_is_in_env_example_and_readme():
    read_by_code = {setting.name.upper() for setting in dataclasses.fields(Settings)}
    assert "DATABASE_URL" in read_by_code
    env_example = (DEPLOY / ".env.example").read_text()
    readme = (ROOT / "README.md").read_text()
    for name in sorted(read_by_code):
        assert re.search(rf"^#? ?{name}=", env_example, re.MULTILINE), f"{name} not in .env.example"
        assert f"`{name}`" in readme, f"{name} not in the README's configuration table"


def test_parser_rejects_a_made_up_subcommand():
    """The checks above can fail: an unknown subcommand is refused."""
    with pytest.raises(pytest.fail.Exception):
        assert_project_command(["dispatcher", "no-such-subcommand"])
    with pytest.raises(SystemExit):
        build_parser().parse_args(["serve", "--no-such-option"])


# --- Mosquitto: the ACL, for real -----------------------------------------------------------

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def broker(tmp_path):
    """The deploy/ Mosquitto config on free ports, with the server's password file (user
    "dispatcher") and the devices' (two devices), made as README says."""
    if not shutil.which("mosquitto") or not shutil.which("mosquitto_passwd"):
        pytest.fail("mosquitto is not installed: run deploy/services.sh")
    devices = [str(uuid.uuid4()), str(uuid.uuid4())]
    users = {"dispatcher": "server-secret", devices[0]: "token-a", devices[1]: "token-b"}
    passwd, passwd_server = tmp_path / "passwd", tmp_path / "passwd-server"
    for user, password in users.items():
        path = passwd_server if user == "dispatcher" else passwd
        flags = ["-b"] if path.exists() else ["-c", "-b"]
        subprocess.run(["mosquitto_passwd", *flags, str(path), user, password], check=True)
    port, server_port = free_port(), free_port()
    conf = (DEPLOY / "mosquitto" / "mosquitto.conf").read_text()
    conf = conf.replace("/mosquitto/config/passwd-server", str(passwd_server))
    conf = conf.replace("/mosquitto/config/passwd", str(passwd))
    conf = conf.replace("/mosquitto/config/acl", str(DEPLOY / "mosquitto" / "acl"))
    conf = conf.replace("/mosquitto/data/", f"{tmp_path}/")
    conf = re.sub(r"^listener 1883$", f"listener {port} 127.0.0.1", conf, flags=re.MULTILINE)
    conf = re.sub(r"^listener 1884$", f"listener {server_port} 127.0.0.1", conf,
                  flags=re.MULTILINE)
    # Run as the test's user: started as root, mosquitto would switch to a user that cannot
    # read pytest's private temporary directory.
    conf += f"\nuser {pwd.getpwuid(os.getuid()).pw_name}\n"
    (tmp_path / "mosquitto.conf").write_text(conf)
    process = subprocess.Popen(["mosquitto", "-c", str(tmp_path / "mosquitto.conf")],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with socket.socket() as s, socket.socket() as s2:
            if s.connect_ex(("127.0.0.1", port)) == 0 and \
                    s2.connect_ex(("127.0.0.1", server_port)) == 0:
                break
        time.sleep(0.05)
    yield port, users, devices, server_port
    process.terminate()
    process.wait(timeout=10)


def connect(port: int, user: str, password: str,
            client_id: str = "") -> tuple[mqtt.Client, list[str], bool]:
    """A connected client (or one the broker refused), the topics it receives, and whether in."""
    received: list[str] = []
    answered = threading.Event()
    accepted: list[bool] = []

    def on_connect(client, userdata, flags, reason_code, properties):
        accepted.append(not reason_code.is_failure)
        answered.set()

    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2,
                         client_id=client_id or f"t-{uuid.uuid4().hex[:8]}")
    client.username_pw_set(user, password)
    client.on_connect = on_connect
    client.on_message = lambda c, u, message: received.append(message.topic)
    client.connect("127.0.0.1", port)
    client.loop_start()
    answered.wait(5)
    return client, received, accepted == [True]


def test_mosquitto_acl_lets_a_device_read_only_its_own_topic(broker):
    port, users, (device_a, device_b), server_port = broker
    a, received_by_a, _ = connect(port, device_a, users[device_a])
    b, received_by_b, _ = connect(port, device_b, users[device_b])
    a.subscribe(f"devices/{device_a}/jobs/notify", qos=1)
    a.subscribe(f"devices/{device_b}/jobs/notify", qos=1)
    a.subscribe("devices/#", qos=1)
    b.subscribe(f"devices/{device_b}/jobs/notify", qos=1)
    time.sleep(0.3)
    server, _, _ = connect(server_port, "dispatcher", users["dispatcher"])
    for device in (device_a, device_b):
        message = server.publish(f"devices/{device}/jobs/notify", '{"event": "queued"}', qos=1)
        message.wait_for_publish(5)
    # A device cannot nudge another device: the broker drops the message.
    a.publish(f"devices/{device_b}/jobs/notify", '{"event": "forged"}', qos=1).wait_for_publish(5)
    time.sleep(0.5)
    assert received_by_a == [f"devices/{device_a}/jobs/notify"]
    assert received_by_b == [f"devices/{device_b}/jobs/notify"]
    for client in (a, b, server):
        client.loop_stop()
        client.disconnect()


def test_the_server_user_cannot_log_in_on_the_devices_listener(broker):
    port, users, (device_a, _), server_port = broker
    assert connect(server_port, "dispatcher", users["dispatcher"])[2] is True
    assert connect(port, "dispatcher", users["dispatcher"])[2] is False
    # Nor a device on the server's listener.
    assert connect(server_port, device_a, users[device_a])[2] is False


def test_mosquitto_refuses_unknown_users_and_anonymous_clients(broker):
    port, users, (device_a, _), _ = broker
    assert connect(port, device_a, users[device_a])[2] is True
    assert connect(port, device_a, "wrong-password")[2] is False
    assert connect(port, "", "")[2] is False


def test_a_device_cannot_take_over_another_devices_session(broker):
    port, users, (device_a, device_b), server_port = broker
    dropped = threading.Event()
    a, received_by_a, _ = connect(port, device_a, users[device_a], f"jobs-agent-{device_a}")
    a.on_disconnect = lambda *args: dropped.set()
    a.subscribe(f"devices/{device_a}/jobs/notify", qos=1)
    # Device b asks for device a's client id: the broker gives it its own (its user name).
    b, _, b_in = connect(port, device_b, users[device_b], f"jobs-agent-{device_a}")
    assert b_in
    time.sleep(0.3)
    assert not dropped.is_set()
    server, _, _ = connect(server_port, "dispatcher", users["dispatcher"])
    server.publish(f"devices/{device_a}/jobs/notify", '{"event": "queued"}', qos=1) \
        .wait_for_publish(5)
    time.sleep(0.3)
    assert received_by_a == [f"devices/{device_a}/jobs/notify"]
    for client in (a, b, server):
        client.loop_stop()
        client.disconnect()

