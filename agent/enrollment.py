"""``jobs-agent enroll``: trade an enrollment token for this device's identity.

The agent sends a hash of what identifies the hardware (the Raspberry Pi's serial, else
``/etc/machine-id``), so the same device enrolling again gets its identity back; then it
writes its config file and token file (both mode 600) and starts its service when systemd
runs. A refused token writes nothing. When the server issues MQTT credentials, the answer
carries the device's own broker login, which goes into the config file as its ``mqtt_url``.
"""

from __future__ import annotations

import configparser
import hashlib
import io
import json
import os
import socket
import ssl
import subprocess
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, urlsplit, urlunsplit

from agent import __version__
from agent.config import DEFAULT_CONFIG_FILE, server_url_problems
from agent.storage import atomic_write_bytes

# Where the hardware says who it is, most specific first: a Pi's serial survives reinstalling
# the OS, the machine id does not.
HARDWARE_SOURCES = (
    Path("/sys/firmware/devicetree/base/serial-number"),
    Path("/etc/machine-id"),
    Path("/var/lib/dbus/machine-id"),
)
DEFAULT_TOKEN_FILE = "/etc/jobs-agent/token"
HTTP_TIMEOUT_S = 30
SERVICE = "jobs-agent.service"


class EnrollmentError(Exception):
    """Enrollment did not happen; the message says why, and nothing was written."""


@dataclass(frozen=True)
class Enrolled:
    status: str  # "accepted", or "pending" until an operator accepts the device
    device_uuid: str
    device_name: str
    device_token: str
    # The device's MQTT login (url, username, password, ready, problem) when the server
    # issues them.
    mqtt: dict | None = None

    @property
    def mqtt_url(self) -> str:
        """The broker URL with the device's login in it, as the config's mqtt_url holds it."""
        if not self.mqtt:
            return ""
        parts = urlsplit(self.mqtt["url"])
        login = f"{quote(self.mqtt['username'], safe='')}:{quote(self.mqtt['password'], safe='')}"
        return urlunsplit((parts.scheme, f"{login}@{parts.netloc}", "", "", ""))


def hardware_id(sources: tuple[Path, ...] = HARDWARE_SOURCES) -> str:
    """A hash of the first hardware identity found (the raw one is never sent)."""
    for source in sources:
        try:
            value = source.read_bytes().strip(b"\0 \n")
        except OSError:
            continue
        if value:
            return hashlib.sha256(b"device-jobs hardware:" + value).hexdigest()
    raise EnrollmentError("no hardware identity: none of "
                          + ", ".join(str(source) for source in sources) + " can be read")


def request_identity(server_url: str, enrollment_token: str, hardware: str, device_name: str,
                     ca_file: str = "") -> Enrolled:
    """POST /api/v1/devices/enroll; EnrollmentError with the server's reason when refused."""
    body = json.dumps({"enrollment_token": enrollment_token, "hardware_id": hardware,
                       "device_name": device_name}).encode()
    request = urllib.request.Request(
        f"{server_url.rstrip('/')}/api/v1/devices/enroll", data=body, method="POST",
        headers={"Content-Type": "application/json", "Accept": "application/json",
                 "User-Agent": f"jobs-agent/{__version__}"})
    context = ssl.create_default_context(cafile=ca_file) if ca_file else None
    try:
        with urllib.request.urlopen(request, timeout=HTTP_TIMEOUT_S, context=context) as answer:
            data = json.loads(answer.read())
    except urllib.error.HTTPError as exc:
        raise EnrollmentError(f"the server refused: {_reason(exc)}") from None
    except (OSError, ValueError) as exc:
        raise EnrollmentError(f"cannot reach {server_url}: {getattr(exc, 'reason', exc)}"
                              ) from None
    return Enrolled(data["status"], data["uuid"], data["device_name"], data["device_token"],
                    data.get("mqtt"))


def _reason(exc: urllib.error.HTTPError) -> str:
    try:
        answer = json.loads(exc.read())
    except (OSError, ValueError):
        return f"HTTP {exc.code}"
    errors = answer.get("errors") if isinstance(answer, dict) else None
    message = answer.get("message", "") if isinstance(answer, dict) else ""
    return f"{message} {json.dumps(errors)}" if errors else f"{message} (HTTP {exc.code})"


def config_text(server_url: str, device_uuid: str, token_file: str, ca_file: str,
                allow_insecure_http: bool, current: str = "", mqtt_url: str = "") -> str:
    """The config file's text: the settings enrollment decides, over those of ``current`` (the
    file as it was), so what an operator added (mqtt_url, say, unless the server issued one
    now) survives enrolling again."""
    parser = configparser.ConfigParser(interpolation=None)
    try:
        parser.read_string(current)
    except configparser.Error:
        parser = configparser.ConfigParser(interpolation=None)
    if not parser.has_section("agent"):
        parser["agent"] = {}
    parser["agent"].update({"server_url": server_url, "device_uuid": device_uuid,
                            "token_file": token_file})
    parser["agent"].pop("token", None)
    if ca_file:
        parser["agent"]["ca_file"] = ca_file
    if mqtt_url:
        parser["agent"]["mqtt_url"] = mqtt_url
    if allow_insecure_http:
        parser["agent"]["allow_insecure_http"] = "true"
    text = io.StringIO()
    text.write("# Written by `jobs-agent enroll`; every setting is in agent.conf.example.\n")
    parser.write(text)
    return text.getvalue()


def _check_writable(directory: Path) -> None:
    """EnrollmentError unless ``directory`` exists and is writable, or can be created."""
    existing = directory
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise EnrollmentError(f"cannot create {directory}: {existing} is not a directory")
    if not os.access(existing, os.W_OK):
        raise EnrollmentError(f"cannot write in {existing} (enroll as root)")


def enroll(server_url: str, enrollment_token: str, device_name: str = "",
           config_file: str = DEFAULT_CONFIG_FILE, token_file: str = DEFAULT_TOKEN_FILE,
           ca_file: str = "", allow_insecure_http: bool = False,
           hardware_sources: tuple[Path, ...] = HARDWARE_SOURCES) -> Enrolled:
    """Enroll this device and write its token file and config file (mode 600)."""
    problems = server_url_problems(server_url, allow_insecure_http)
    if problems:
        raise EnrollmentError("; ".join(problems))
    # Checked before the server spends a use of the token on a device that could not keep it.
    for path in (token_file, config_file):
        _check_writable(Path(path).parent)
    enrolled = request_identity(server_url, enrollment_token, hardware_id(hardware_sources),
                                device_name or socket.gethostname(), ca_file)
    for path in (token_file, config_file):
        Path(path).parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    atomic_write_bytes(Path(token_file), enrolled.device_token.encode())
    try:
        current = Path(config_file).read_text()
    except (OSError, UnicodeDecodeError):
        current = ""
    atomic_write_bytes(Path(config_file), config_text(
        server_url, enrolled.device_uuid, token_file, ca_file, allow_insecure_http,
        current, enrolled.mqtt_url).encode())
    return enrolled


def start_service() -> str:
    """(Re)start the agent's service when systemd runs this system; say what happened."""
    if not Path("/run/systemd/system").is_dir():
        return "systemd is not running here: start the agent with `jobs-agent run`"
    done = subprocess.run(["systemctl", "enable", "--now", SERVICE], capture_output=True,
                          text=True, check=False)
    if done.returncode == 0:
        subprocess.run(["systemctl", "restart", SERVICE], capture_output=True, check=False)
        return f"{SERVICE} started"
    return f"could not start {SERVICE}: {done.stderr.strip()}"
