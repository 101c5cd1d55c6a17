"""Agent configuration: defaults < config file < environment < command-line flags.

The config file is INI (an ``[agent]`` section) or JSON (one object); its keys are the field
names of ``AgentConfig``. Environment variables are ``JOBS_AGENT_<FIELD>`` in upper case.
"""

from __future__ import annotations

import configparser
import dataclasses
import ipaddress
import json
import os
import stat
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from agent.signatures import decode_public_key

DEFAULT_CONFIG_FILE = "/etc/jobs-agent/agent.conf"
ENV_PREFIX = "JOBS_AGENT_"
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
TRUE_WORDS = frozenset({"1", "true", "yes", "on"})
FALSE_WORDS = frozenset({"0", "false", "no", "off"})


class ConfigError(Exception):
    """The configuration is unusable; the message names every problem."""


@dataclass(frozen=True)
class AgentConfig:
    server_url: str = ""
    device_uuid: str = ""
    token: str = ""
    token_file: str = ""
    poll_interval_s: float = 30.0
    mqtt_url: str = ""
    handler_dir: str = "/etc/jobs-agent/handlers"
    state_dir: str = "/var/lib/jobs-agent"
    output_cap_bytes: int = 64 * 1024
    step_timeout_s: float = 3600.0
    # While a step runs without MQTT, how often to ask the server whether the job was canceled.
    cancel_check_s: float = 5.0
    # How long a reboot command may take to actually take the system down.
    reboot_wait_s: float = 300.0
    ca_file: str = ""
    log_level: str = "INFO"
    # Off: runHandler steps run server handlers only (no PATH, no path, no handler_dir).
    allow_local_handlers: bool = True
    # Where the kernel's boot id is read, to tell a reboot from an agent restart.
    boot_id_file: str = "/proc/sys/kernel/random/boot_id"
    # Plain http:// to a host other than this one sends the token and the jobs in clear text.
    allow_insecure_http: bool = False
    # Base64 Ed25519 public key: when set, only job documents signed with its private key run.
    signing_public_key: str = ""
    # Executables whose key=value output joins the inventory; how often it is collected (sent
    # only when it changed).
    inventory_dir: str = "/etc/jobs-agent/inventory.d"
    inventory_interval_s: float = 6 * 3600.0

    def require_server(self) -> AgentConfig:
        """Check what talking to the server needs; return self so calls can chain."""
        problems = []
        if not self.server_url:
            problems.append("server_url is required (JOBS_AGENT_SERVER_URL or --server-url)")
        if not self.device_uuid:
            problems.append("device_uuid is required (JOBS_AGENT_DEVICE_UUID or --device-uuid)")
        if not self.token:
            problems.append(
                "a device token is required (JOBS_AGENT_TOKEN or JOBS_AGENT_TOKEN_FILE)"
            )
        if problems:
            raise ConfigError("; ".join(problems))
        return self

    @property
    def has_server(self) -> bool:
        return bool(self.server_url and self.device_uuid and self.token)


FIELDS = {field.name: field for field in dataclasses.fields(AgentConfig)}


def env_name(field_name: str) -> str:
    return ENV_PREFIX + field_name.upper()


def load_config(
    flags: Mapping[str, object] | None = None,
    environ: Mapping[str, str] | None = None,
    config_file: str | None = None,
) -> AgentConfig:
    """Merge every source into one checked AgentConfig; ConfigError names each problem."""
    environ = os.environ if environ is None else environ
    raw: dict[str, object] = {}
    path = config_file or environ.get(ENV_PREFIX + "CONFIG")
    if path or Path(DEFAULT_CONFIG_FILE).is_file():
        raw.update(read_config_file(path or DEFAULT_CONFIG_FILE))
    for name in FIELDS:
        value = environ.get(env_name(name))
        if value not in (None, ""):
            raw[name] = value
    raw.update({k: v for k, v in (flags or {}).items() if v is not None and k in FIELDS})
    values, problems = _convert(raw)
    if not values.get("token") and values.get("token_file"):
        try:
            problems.extend(_private_file_problems("token_file", str(values["token_file"])))
            values["token"] = Path(str(values["token_file"])).read_text().strip()
        except OSError as exc:
            problems.append(f"token_file: cannot read {values['token_file']}: {exc.strerror}")
    problems.extend(_check(values))
    if problems:
        raise ConfigError("invalid agent configuration: " + "; ".join(problems))
    return AgentConfig(**values)


def read_config_file(path: str) -> dict[str, object]:
    """The settings of a config file, which only its owner may read or write: it says which
    server this device obeys, and may hold the token or the MQTT password."""
    try:
        problems = _private_file_problems("config file", path)
        text = Path(path).read_text()
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from None
    if problems:
        raise ConfigError("; ".join(problems))
    if path.endswith(".json") or text.lstrip().startswith("{"):
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise ConfigError(f"config file {path} is not valid JSON: {exc}") from None
        if not isinstance(data, dict):
            raise ConfigError(f"config file {path} must hold one JSON object")
    else:
        parser = configparser.ConfigParser(interpolation=None)
        try:
            parser.read_string(text, source=path)
        except configparser.Error as exc:
            raise ConfigError(f"config file {path} is not valid INI: {exc}") from None
        if not parser.has_section("agent"):
            raise ConfigError(f"config file {path} needs an [agent] section")
        data = dict(parser.items("agent"))
    unknown = sorted(set(data) - set(FIELDS))
    if unknown:
        raise ConfigError(f"config file {path}: unknown keys {', '.join(unknown)}")
    return data


def _private_file_problems(what: str, path: str) -> list[str]:
    """Why ``path`` is not private to its owner (OSError when it cannot be looked at)."""
    mode = os.stat(path).st_mode
    if stat.S_IMODE(mode) & 0o077:
        return [f"{what} {path} is mode {stat.S_IMODE(mode):o}: group and others must have no "
                f"access (chmod 600 {path})"]
    return []


def _convert(raw: Mapping[str, object]) -> tuple[dict[str, Any], list[str]]:
    values: dict[str, Any] = {}
    problems = []
    for name, value in raw.items():
        kind: type = type(FIELDS[name].default)
        if kind is bool:
            word = str(value).strip().lower()
            if word in TRUE_WORDS | FALSE_WORDS:
                values[name] = word in TRUE_WORDS
            else:
                problems.append(f"{name}: expected true or false, got {value!r}")
            continue
        try:
            values[name] = kind(str(value).strip()) if kind is not str else str(value).strip()
        except ValueError:
            problems.append(f"{name}: expected a {kind.__name__}, got {value!r}")
    return values, problems


def _check(values: Mapping[str, Any]) -> list[str]:
    problems = []
    server_url = str(values.get("server_url", ""))
    if server_url and (urlsplit(server_url).scheme not in ("http", "https")
                       or not urlsplit(server_url).netloc):
        problems.append(f"server_url: must be an http(s) URL, got {server_url!r}")
    elif (server_url and urlsplit(server_url).scheme == "http"
          and not _is_loopback(urlsplit(server_url).hostname or "")
          and not values.get("allow_insecure_http")):
        problems.append(f"server_url: {server_url} is plain http to another host, which would "
                        "send the token and the jobs in clear text; use https (or set "
                        "allow_insecure_http on a network you trust)")
    mqtt_url = str(values.get("mqtt_url", ""))
    if mqtt_url and urlsplit(mqtt_url).scheme not in ("mqtt", "mqtts", "tcp", "ssl"):
        problems.append(f"mqtt_url: must be mqtt://host[:port] or mqtts://…, got {mqtt_url!r}")
    device_uuid = str(values.get("device_uuid", ""))
    if device_uuid:
        try:
            uuid.UUID(device_uuid)
        except ValueError:
            problems.append(f"device_uuid: not a UUID: {device_uuid!r}")
    for name in ("poll_interval_s", "step_timeout_s", "cancel_check_s", "inventory_interval_s"):
        if name in values and not float(values[name]) > 0:
            problems.append(f"{name}: must be greater than 0")
    if "reboot_wait_s" in values and float(values["reboot_wait_s"]) < 0:
        problems.append("reboot_wait_s: must not be negative")
    if values.get("signing_public_key"):
        try:
            decode_public_key(str(values["signing_public_key"]))
        except ValueError as exc:
            problems.append(f"signing_public_key: not an Ed25519 public key ({exc})")
    if str(values.get("log_level", "INFO")).upper() not in LOG_LEVELS:
        problems.append(f"log_level: one of {', '.join(LOG_LEVELS)}")
    if "output_cap_bytes" in values and int(values["output_cap_bytes"]) < 1024:
        problems.append("output_cap_bytes: must be at least 1024")
    return problems


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def server_url_problems(server_url: str, allow_insecure_http: bool = False) -> list[str]:
    """What ``load_config`` would refuse about this server URL (enrollment checks it first)."""
    return _check({"server_url": server_url, "allow_insecure_http": allow_insecure_http})
