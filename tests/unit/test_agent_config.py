"""Agent configuration: sources, precedence, files, and errors that name the problem."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from agent.cli import build_parser
from agent.config import FIELDS, ConfigError, load_config

UUID = "8479359e-dbeb-4858-813c-e8a9008dde04"


def write_private(path: Path, text: str) -> Path:
    """A config or token file as the agent wants it: mode 600."""
    path.write_text(text)
    path.chmod(0o600)
    return path


def test_defaults_are_usable_for_a_device():
    config = load_config({}, environ={}, config_file=None)
    assert config.poll_interval_s == 30.0
    assert config.state_dir == "/var/lib/jobs-agent"
    assert config.mqtt_url == ""
    assert not config.has_server


def test_flags_beat_environment_which_beats_the_config_file(tmp_path):
    ini = write_private(tmp_path / "agent.conf",
                        f"[agent]\nserver_url = https://file:8000\ndevice_uuid = {UUID}\n"
                        "poll_interval_s = 60\nmqtt_url = mqtt://broker\n")
    env = {"JOBS_AGENT_SERVER_URL": "https://env:8000", "JOBS_AGENT_POLL_INTERVAL_S": "45"}
    config = load_config({"poll_interval_s": 5.0}, environ=env, config_file=str(ini))
    assert config.server_url == "https://env:8000"
    assert config.poll_interval_s == 5.0
    assert config.mqtt_url == "mqtt://broker"
    assert config.device_uuid == UUID


def test_a_json_config_file_and_a_token_file(tmp_path):
    token_file = write_private(tmp_path / "token", "s3cret\n")
    conf = write_private(tmp_path / "agent.json", json.dumps({
        "server_url": "https://jobs.example.com", "device_uuid": UUID,
        "token_file": str(token_file), "output_cap_bytes": 8192}))
    config = load_config({}, environ={"JOBS_AGENT_CONFIG": str(conf)})
    assert config.token == "s3cret"
    assert config.output_cap_bytes == 8192
    assert config.require_server() is config


@pytest.mark.parametrize(("env", "named"), [
    ({"JOBS_AGENT_POLL_INTERVAL_S": "soon"}, "poll_interval_s: expected a float"),
    ({"JOBS_AGENT_POLL_INTERVAL_S": "0"}, "poll_interval_s: must be greater than 0"),
    ({"JOBS_AGENT_SERVER_URL": "ftp://x"}, "server_url: must be an http"),
    ({"JOBS_AGENT_DEVICE_UUID": "device-1"}, "device_uuid: not a UUID"),
    ({"JOBS_AGENT_MQTT_URL": "http://broker"}, "mqtt_url"),
    ({"JOBS_AGENT_TOKEN_FILE": "/nonexistent/token"}, "token_file: cannot read"),
    ({"JOBS_AGENT_OUTPUT_CAP_BYTES": "10"}, "output_cap_bytes: must be at least 1024"),
    ({"JOBS_AGENT_LOG_LEVEL": "LOUD"}, "log_level"),
])
def test_bad_values_are_refused_with_the_setting_named(env, named):
    with pytest.raises(ConfigError, match=named):
        load_config({}, environ=env)


def test_unknown_keys_in_a_config_file_are_refused(tmp_path):
    conf = write_private(tmp_path / "agent.conf", "[agent]\npoll_intervall_s = 10\n")
    with pytest.raises(ConfigError, match="unknown keys poll_intervall_s"):
        load_config({}, environ={}, config_file=str(conf))


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o660, 0o622])
def test_a_config_or_token_file_others_may_access_is_refused(tmp_path, mode):
    conf = write_private(tmp_path / "agent.conf", f"[agent]\ndevice_uuid = {UUID}\n")
    token = write_private(tmp_path / "token", "s3cret")
    conf.chmod(mode)
    with pytest.raises(ConfigError, match="config file .* group and others must have no access"):
        load_config({}, environ={}, config_file=str(conf))
    conf.chmod(0o600)
    token.chmod(mode)
    with pytest.raises(ConfigError, match="token_file .* group and others must have no access"):
        load_config({"token_file": str(token)}, environ={}, config_file=str(conf))


@pytest.mark.parametrize("server_url, allowed", [
    ("http://jobs.example.com", False), ("http://10.0.0.2:8000", False),
    ("http://127.0.0.1:8000", True), ("http://localhost:8000", True), ("http://[::1]:8000", True),
    ("https://jobs.example.com", True),
])
def test_plain_http_to_another_host_is_refused_unless_allowed(server_url, allowed):
    env = {"JOBS_AGENT_SERVER_URL": server_url}
    if allowed:
        assert load_config({}, environ=env).server_url == server_url
    else:
        with pytest.raises(ConfigError, match="plain http"):
            load_config({}, environ=env)
        insecure = load_config({}, environ={**env, "JOBS_AGENT_ALLOW_INSECURE_HTTP": "true"})
        assert insecure.allow_insecure_http is True
    with pytest.raises(ConfigError, match="allow_insecure_http: expected true or false"):
        load_config({}, environ={**env, "JOBS_AGENT_ALLOW_INSECURE_HTTP": "perhaps"})


def test_running_needs_a_server_a_device_and_a_token():
    with pytest.raises(ConfigError) as error:
        load_config({}, environ={}).require_server()
    for name in ("server_url", "device_uuid", "token"):
        assert name in str(error.value)


@pytest.mark.parametrize(("text", "value"), [("false", False), ("no", False), ("0", False),
                                             ("true", True), ("Yes", True)])
def test_allow_local_handlers_is_read_as_a_boolean_from_every_source(text, value):
    assert load_config({}, environ={"JOBS_AGENT_ALLOW_LOCAL_HANDLERS": text}).allow_local_handlers \
        is value
    args = build_parser().parse_args(["run", "--allow-local-handlers", text])
    assert load_config(vars(args), environ={}).allow_local_handlers is value
    with pytest.raises(ConfigError, match="allow_local_handlers: expected true or false"):
        load_config({}, environ={"JOBS_AGENT_ALLOW_LOCAL_HANDLERS": "maybe"})


def test_the_command_line_accepts_every_setting_as_a_flag():
    args = build_parser().parse_args(
        ["run", "--server-url", "https://x", "--poll-interval-s", "2.5", "--state-dir", "/s"])
    config = load_config(vars(args), environ={})
    assert (config.server_url, config.poll_interval_s, config.state_dir) == ("https://x", 2.5, "/s")


def test_jobs_agent_run_without_configuration_exits_2_and_says_what_is_missing(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "agent", "run", "--state-dir", str(tmp_path)],
        capture_output=True, text=True, timeout=30, env={"PATH": "/usr/bin:/bin"},
    )
    assert result.returncode == 2
    assert "server_url is required" in result.stderr


def test_the_example_config_file_loads_and_documents_every_setting(tmp_path):
    example = Path(__file__).resolve().parents[2] / "deploy" / "agent.conf.example"
    installed = tmp_path / "agent.conf"
    installed.write_text(example.read_text())
    installed.chmod(0o600)
    token = tmp_path / "token"
    token.write_text("t")
    token.chmod(0o600)
    config = load_config({"token_file": str(token)}, environ={}, config_file=str(installed))
    assert config.require_server().server_url == "https://jobs.example.com"
    text = example.read_text()
    for name in FIELDS:
        assert f"\n{name} =" in text or f"\n# {name} =" in text, f"{name} is not in the example"


def test_the_agent_and_every_schema_import_only_the_stdlib_and_marshmallow_without_mqtt():
    # The agent may import any of schemas: each must load on a device, where only the agent's
    # own dependencies are installed (marshmallow, and what it needs itself: packaging in its
    # newer versions; paho only for MQTT, imported when used).
    # What is installed beside the interpreter is in site-packages (pip) or dist-packages
    # (Debian); sys.stdlib_module_names would say it more simply, but only from Python 3.10.
    code = ("import importlib, pkgutil, sys, agent.cli, agent.daemon, schemas; "
            "[importlib.import_module('schemas.' + m.name) "
            " for m in pkgutil.iter_modules(schemas.__path__)]; "
            "where = {m.partition('.')[0]: getattr(sys.modules[m], '__file__', None) or '' "
            "         for m in list(sys.modules) if '.' not in m}; "
            "print(sorted(t for t, f in where.items() "
            "             if ('site-packages' in f or 'dist-packages' in f) and t[:1] != '_' "
            "             and t not in {'agent', 'schemas', 'marshmallow', 'packaging'}))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=30, check=True)
    assert result.stdout.strip() == "[]"
