"""Jinja filters and globals of the portal: times people can read, durations, JSON, badges."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from flask import Flask, current_app

from api.portal import sessions
from schemas.vocabulary import ENDED_JOB, FAILURES, PENDING, SUCCEEDED


def ago(moment: datetime | None, now: datetime | None = None) -> str:
    """"3 min ago"-style, for a page that shows the exact UTC time on hover."""
    if moment is None:
        return "—"
    seconds = int(((now or datetime.now(UTC)) - moment).total_seconds())
    future = seconds < 0
    seconds = abs(seconds)
    if seconds < 45:
        text = f"{seconds} s"
    elif seconds < 3600:
        text = f"{round(seconds / 60)} min"
    elif seconds < 86400:
        text = f"{round(seconds / 3600)} h"
    else:
        text = f"{round(seconds / 86400)} d"
    return f"in {text}" if future else f"{text} ago"


def utc(moment: datetime | None) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC") if moment else ""


def duration(started: datetime | None, ended: datetime | None) -> str:
    """How long from ``started`` to ``ended`` (to now while it runs)."""
    if started is None:
        return "—"
    seconds = int(((ended or datetime.now(UTC)) - started).total_seconds())
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60} min"


def badge(status: str | None) -> str:
    """The CSS class of a status badge."""
    if status == SUCCEEDED:
        return "badge ok"
    if status in FAILURES:
        return "badge bad"
    if status in PENDING:
        return "badge live"
    return "badge idle"


def online(last_seen_at: datetime | None) -> bool:
    """Seen within ``DEVICE_ONLINE_WITHIN_S``, as the fleet's online count has it."""
    if last_seen_at is None:
        return False
    within_s = current_app.config["SETTINGS"].device_online_within_s
    return (datetime.now(UTC) - last_seen_at).total_seconds() <= within_s


# The main menu entry each page belongs to (by endpoint prefix; the first match wins).
SECTIONS = (("portal.device_output", "executions"), ("portal.retry_device", "executions"),
            ("portal.execut", "executions"), ("portal.new_execution", "executions"),
            ("portal.template", "templates"), ("portal.new_template", "templates"),
            ("portal.device", "devices"), ("portal.new_device", "devices"),
            ("portal.pending_devices", "devices"), ("portal.create_enrollment_token", "devices"),
            ("portal.handler", "handlers"), ("portal.new_handler", "handlers"),
            ("portal.group", "groups"), ("portal.save_group", "groups"),
            ("portal.artifact", "artifacts"), ("portal.upload_artifact", "artifacts"))


def section_of(endpoint: str | None) -> str:
    for prefix, section in SECTIONS:
        if (endpoint or "").startswith(prefix):
            return section
    return ""


def pretty_json(value: object) -> str:
    return json.dumps(value, indent=2, default=str)


def json_text(value: object) -> str:
    """JSON to read, escaped by autoescape like any text (``tojson`` would show \\u003c)."""
    return json.dumps(value, ensure_ascii=False, default=str)


def fact(facts: object, dotted: str) -> object:
    """The value at a dotted path of a device's inventory (``os.version_id``), or None."""
    for key in dotted.split("."):
        if not isinstance(facts, dict):
            return None
        facts = facts.get(key)
    return facts


def register(app: Flask) -> None:
    app.jinja_env.filters.update(ago=ago, utc=utc, badge=badge, pretty_json=pretty_json,
                                  json_text=json_text, fact=fact)
    app.jinja_env.globals.update(
        duration=duration, online=online, section_of=section_of, csrf_token=sessions.csrf_token,
        can_write=sessions.can_write, ENDED_JOB=ENDED_JOB, FAILURES=FAILURES,
    )
