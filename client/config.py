"""Where the operator commands find the API: URL and token.

Each of the two is taken from the first of: the command line (``--url``, ``--token``), the
environment (``DEVICE_JOBS_URL``, ``DEVICE_JOBS_TOKEN``), the config file written by
``dispatcher login`` (``DEVICE_JOBS_CONFIG``, else ``$XDG_CONFIG_HOME/device-jobs/config.json``,
else ``~/.config/device-jobs/config.json``). The file holds a token, so it is written mode 600.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from client.errors import NotConfigured

URL_ENV = "DEVICE_JOBS_URL"
TOKEN_ENV = "DEVICE_JOBS_TOKEN"
CONFIG_ENV = "DEVICE_JOBS_CONFIG"


@dataclass(frozen=True)
class Connection:
    url: str
    token: str


def config_path() -> Path:
    if os.environ.get(CONFIG_ENV):
        return Path(os.environ[CONFIG_ENV])
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "device-jobs" / "config.json"


def read_config(path: Path) -> dict[str, str]:
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise NotConfigured(f"cannot read the config file {path}: {exc}") from None
    if not isinstance(data, dict):
        raise NotConfigured(f"the config file {path} is not a JSON object")
    return {k: v for k, v in data.items() if isinstance(v, str)}


def write_config(path: Path, url: str, token: str) -> None:
    """Write URL and token readable by their owner alone (mode 600, even over an old file)."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump({"url": url, "token": token}, f, indent=2)
        f.write("\n")


def resolve(url: str | None = None, token: str | None = None) -> Connection:
    """The URL and token to use (see the module's docstring for the order)."""
    stored: dict[str, str] | None = None

    def from_file(key: str) -> str | None:
        nonlocal stored
        if stored is None:
            stored = read_config(config_path())
        return stored.get(key)

    url = url or os.environ.get(URL_ENV) or from_file("url")
    if not url:
        raise NotConfigured(f"no API URL: set {URL_ENV} or run 'dispatcher login'")
    token = token or os.environ.get(TOKEN_ENV) or from_file("token")
    if not token:
        raise NotConfigured(f"no API token: set {TOKEN_ENV} or run 'dispatcher login'")
    return Connection(url.rstrip("/"), token)
