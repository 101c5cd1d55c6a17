"""Executions: the dashboard, one execution with its devices, a device's output, and the
operator's cancel / force cancel / retry. Live parts are fragments the page polls."""

from __future__ import annotations

import uuid

from flask import current_app, flash, redirect, render_template, request, url_for
from werkzeug.exceptions import BadRequest

from api.auth import actor
from api.effects import carried, settings
from api.portal import bp, rollouts
from api.portal.sessions import admin_only
from dispatcher.errors import Conflict
from dispatcher.fleet.counts import fleet_overview
from dispatcher.jobs import control, progress, reports
from dispatcher.policies import recurring
from schemas.vocabulary import (
    DEVICE_STATUSES,
    ENDED_JOB,
    JOB_STATUSES,
    LIVE_JOB,
    RECURRING,
)

PAGE_SIZE = 25
EVENTS_SHOWN = 20
RUNS_SHOWN = 10


def _page() -> int:
    try:
        return max(1, int(request.args.get("page", "1")))
    except ValueError:
        raise BadRequest("page must be a whole number") from None


def _status(allowed: tuple[str, ...]) -> str | None:
    status = request.args.get("status") or None
    if status is not None and status not in allowed:
        raise BadRequest(f"Unknown status {status!r}; one of: {', '.join(allowed)}")
    return status


def _executions_view() -> dict:
    status, page = _status(JOB_STATUSES), _page()
    listing = progress.list_executions(status, PAGE_SIZE, (page - 1) * PAGE_SIZE)
    live = any(job["status"] in LIVE_JOB for job in listing["executions"])
    return {"listing": listing, "status": status, "page": page, "page_size": PAGE_SIZE,
            "statuses": JOB_STATUSES, "live": live, "overview": progress.executions_overview(),
            "waiting": rollouts.waiting_for_a_person(),
            "fleet": fleet_overview(settings())}


@bp.route("/executions")
def executions():
    return render_template("executions.html", **_executions_view())


@bp.route("/executions/live")
def executions_live():
    return render_template("_executions_live.html", **_executions_view())


def _execution_view(job_id: uuid.UUID) -> dict:
    status, page = _status(DEVICE_STATUSES), _page()
    job = progress.get_execution(job_id)
    counts = progress.status_counts(job_id)
    search = (request.args.get("device") or "").strip()
    offset = (page - 1) * PAGE_SIZE
    if search:
        devices = progress.search_execution_devices(job_id, search, status, PAGE_SIZE, offset)
    else:
        devices = progress.list_execution_devices(job_id, status, PAGE_SIZE, offset)
    runs = (recurring.list_runs(job_id, RUNS_SHOWN, 0)
            if job["execution_type"] == RECURRING else None)
    return {"job": job, "devices": devices, "status": status, "page": page, "search": search,
            "counts": counts,
            "page_size": PAGE_SIZE, "statuses": DEVICE_STATUSES, "runs": runs,
            "events": progress.recent_job_events(job_id, EVENTS_SHOWN),
            "ended": job["status"] in ENDED_JOB, "rollout": rollouts.stage_panel(job)}


@bp.route("/executions/<uuid:job_id>")
def execution(job_id: uuid.UUID):
    return render_template("execution.html", **_execution_view(job_id))


@bp.route("/executions/<uuid:job_id>/live")
def execution_live(job_id: uuid.UUID):
    return render_template("_execution_live.html", **_execution_view(job_id))


@bp.route("/executions/<uuid:job_id>/devices/<uuid:device_uuid>")
def device_output(job_id: uuid.UUID, device_uuid: uuid.UUID):
    """One device's latest row for a job: its output tail, exit code, failed step."""
    row = reports.get_device_job(job_id, device_uuid)
    job = progress.get_execution(job_id)
    return render_template("device_output.html", row=row, job=job, device_uuid=device_uuid)


@bp.route("/executions/<uuid:job_id>/devices/<uuid:device_uuid>/<any(stdout, stderr):stream>.txt")
def download_output(job_id: uuid.UUID, device_uuid: uuid.UUID, stream: str):
    """The output tail as a plain-text download (never rendered by the browser)."""
    row = reports.get_device_job(job_id, device_uuid)
    response = current_app.response_class(row[stream] or "", mimetype="text/plain")
    response.headers["Content-Disposition"] = (
        f'attachment; filename="{job_id}-{device_uuid}-{stream}.txt"')
    return response


def _back_to(job_id: uuid.UUID) -> str:
    """Where an action returns: the page it was made on (a portal path), else the execution."""
    back = request.form.get("back") or ""
    if back.startswith("/portal/") and not back.startswith("//"):
        return back
    return url_for("portal.execution", job_id=job_id)


@bp.route("/executions/<uuid:job_id>/cancel", methods=["POST"])
@admin_only
def cancel_execution(job_id: uuid.UUID):
    force = request.form.get("force") == "1"
    try:
        result = carried(control.cancel_execution(job_id, actor(), force=force,
                                                  reason=request.form.get("reason") or None))
    except Conflict as exc:
        flash(f"Not canceled: {exc.message}.", "bad")
    else:
        kind = "Force-canceled" if force else "Canceled"
        flash(f"{kind} the job: {result['canceled_devices']} device(s) canceled.", "ok")
    return redirect(_back_to(job_id))


@bp.route("/executions/<uuid:job_id>/retry", methods=["POST"])
@admin_only
def retry_execution(job_id: uuid.UUID):
    try:
        result = carried(control.retry_execution(job_id, actor()))
    except Conflict as exc:
        flash(f"Not retried: {exc.message}.", "bad")
    else:
        flash(f"Queued again for {result['retried_devices']} failed device(s).", "ok")
    return redirect(_back_to(job_id))


@bp.route("/executions/<uuid:job_id>/devices/<uuid:device_uuid>/retry", methods=["POST"])
@admin_only
def retry_device(job_id: uuid.UUID, device_uuid: uuid.UUID):
    try:
        row = carried(control.retry_device_job(job_id, device_uuid, actor()))
    except Conflict as exc:
        flash(f"Not retried: {exc.message}.", "bad")
    else:
        flash(f"Queued again for this device (attempt {row['execution_number']}).", "ok")
    return redirect(_back_to(job_id))
