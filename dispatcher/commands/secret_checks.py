"""What the server commands refuse to start with: placeholder or short secrets, and
AUTH_DISABLED on an address other machines can reach.

A fleet's agents run jobs as root, so whoever holds the admin token, or can write to the
database or the broker, owns the fleet. ``deploy/.env.example`` ships placeholders containing
``change-me``; a deployment that forgot one must not come up.
"""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import unquote, urlsplit

from dispatcher.config import Settings, is_loopback
from dispatcher.errors import Misconfigured

MIN_SECRET_CHARS = 32
PLACEHOLDER = "change-me"


def weakness(secret: str) -> str | None:
    """Why ``secret`` may not protect a fleet, or None when it may."""
    if PLACEHOLDER in secret.lower():
        return f"is still the placeholder ({PLACEHOLDER!r})"
    if len(secret) < MIN_SECRET_CHARS:
        return f"is shorter than {MIN_SECRET_CHARS} characters"
    return None


def url_password(url: str) -> str | None:
    password = urlsplit(url).password if url else None
    return None if password is None else unquote(password)


def secrets_in_use(settings: Settings, environ: Mapping[str, str],
                   flower: bool = False) -> dict[str, str]:
    """The secrets a server process would run with, by where they are set. Unset ones are not
    weak, only absent: no bootstrap admin token, a database or broker without a password (the
    local services trust 127.0.0.1)."""
    found = {"ADMIN_TOKEN": settings.admin_token, "METRICS_TOKEN": settings.metrics_token,
             "SECRET_KEY": settings.secret_key,
             "the DATABASE_URL password": url_password(settings.database_url) or "",
             "the MQTT_URL password": url_password(settings.mqtt_url) or ""}
    if flower:
        for i, login in enumerate(filter(None, environ.get("FLOWER_BASIC_AUTH", "").split(","))):
            found[f"the FLOWER_BASIC_AUTH password #{i + 1}"] = login.partition(":")[2]
    return {where: secret for where, secret in found.items() if secret}


def bind_host(bind: str) -> str:
    """The host of a gunicorn ``--bind`` (``host:port``, ``[::1]:port``, ``unix:path``)."""
    if bind.startswith("unix:"):
        return "localhost"
    host, _, _ = bind.rpartition(":")
    return host or bind


def refuse_unsafe_start(settings: Settings, environ: Mapping[str, str], *,
                        flower: bool = False, api_bind: str | None = None) -> None:
    """Raise Misconfigured naming every weak secret, and AUTH_DISABLED on a reachable API."""
    problems = [f"{where} {why}" for where, secret in
                secrets_in_use(settings, environ, flower).items()
                if (why := weakness(secret)) is not None]
    if settings.auth_disabled and api_bind is not None and not is_loopback(bind_host(api_bind)):
        problems.append(f"AUTH_DISABLED is set but the API would listen on {api_bind}; "
                        "it is allowed only on a loopback address")
    if problems:
        raise Misconfigured("refusing to start: " + "; ".join(problems))
