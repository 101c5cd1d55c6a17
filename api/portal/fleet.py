"""Devices: the list with type and attribute filters, registration (its token shown once with
the agent's configuration), a device's page with its Jobs tab; and sign-in / sign-out."""

from __future__ import annotations

import uuid

from flask import (
    current_app,
    flash,
    redirect,
    render_template,
    request,
    url_for,
)

from api.auth import actor
from api.effects import carried, settings
from api.portal import bp, sessions
from api.portal.forms import FieldErrors, FormInvalid, done, group_filter, json_value, load
from api.portal.sessions import admin_only
from dispatcher.errors import Conflict, InvalidInput
from dispatcher.fleet import devices, enrollment
from dispatcher.fleet.counts import fleet_overview
from dispatcher.jobs import reports
from schemas.devices import DeviceCreate
from schemas.vocabulary import PENDING

PAGE_SIZE = 50
JOBS_PAGE_SIZE = 25


@bp.route("/login", methods=["GET", "POST"])
def login():
    settings = current_app.config["SETTINGS"]
    next_page = request.values.get("next") or ""
    if not next_page.startswith("/portal/") or next_page.startswith("//"):
        next_page = url_for("portal.executions")
    if request.method == "POST":
        principal = sessions.sign_in(request.form.get("token", "").strip(), settings)
        if principal is not None:
            flash(f"Signed in as {principal.kind} {principal.name}.", "ok")
            return redirect(next_page)
        return render_template("login.html", next=next_page,
                               error="That token is not a valid admin or viewer token."), 401
    return render_template("login.html", next=next_page, error=None)


@bp.route("/logout", methods=["POST"])
def logout():
    sessions.sign_out()
    return done("Signed out.", "portal.login")


@bp.route("/devices")
def device_list():
    args = request.args.to_dict()
    errors: FieldErrors = {}
    target_filter = group_filter(args, errors)
    # Inventory keys shown as columns, as typed: "os.version_id, disk_free_mb".
    columns = [c.strip() for c in args.get("columns", "").split(",") if c.strip()][:8]
    try:
        page = max(1, int(args.get("page", "1")))
    except ValueError:
        page = 1
    try:
        listing = devices.list_devices(target_filter, PAGE_SIZE, (page - 1) * PAGE_SIZE)
    except InvalidInput as exc:
        errors.setdefault("attributes", []).append(exc.message)
        listing = {"devices": [], "total": 0, "limit": PAGE_SIZE, "offset": 0}
    fleet = fleet_overview(settings())
    pending = enrollment.list_pending_enrollments(1, 0)["total"]
    # A filter that cannot be used still shows the page, with its error, as a 400.
    return render_template("devices.html", listing=listing, args=args, errors=errors, page=page,
                           page_size=PAGE_SIZE, fleet=fleet, pending=pending, columns=columns,
                           target_filter=target_filter), 400 if errors else 200


@bp.route("/devices/new")
def new_device():
    return render_template("device_new.html", form={"device_type": "generic"}, errors={})


@bp.route("/devices/new", methods=["POST"])
@admin_only
def register_device():
    form = request.form.to_dict()
    errors: FieldErrors = {}
    body = {"device_name": form.get("device_name", ""),
            "device_type": form.get("device_type") or "generic",
            "attributes": json_value(form, "attributes", errors, {})}
    if not errors:
        try:
            fields = load(DeviceCreate(), body)
            device, token = carried(devices.register_device(
                fields["device_name"], fields["device_type"], fields["attributes"],
                actor=actor()))
        except FormInvalid as exc:
            errors = exc.errors
        except (InvalidInput, Conflict) as exc:
            errors = {"device_name": [exc.message]}
        else:
            # The token is shown on this answer only; it is never stored in plain.
            return render_template("device_registered.html", device=device, token=token,
                                   server_url=request.host_url.rstrip("/"))
    return render_template("device_new.html", form=form, errors=errors), 400


@bp.route("/devices/<uuid:device_uuid>")
def device_page(device_uuid: uuid.UUID):
    device = devices.get_device(device_uuid)
    try:
        page = max(1, int(request.args.get("page", "1")))
    except ValueError:
        page = 1
    history = reports.list_device_jobs(device_uuid, None, JOBS_PAGE_SIZE,
                                       (page - 1) * JOBS_PAGE_SIZE)
    # The guide's Jobs tab: the current job (QUEUED or IN_PROGRESS) on top, then the rest.
    current = [job for job in history["jobs"] if job["is_latest"] and job["status"] in PENDING]
    rest = [job for job in history["jobs"] if job not in current]
    return render_template("device.html", device=device, jobs=current + rest,
                           current=current, history=history, page=page,
                           page_size=JOBS_PAGE_SIZE)
