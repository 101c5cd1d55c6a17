"""Enrollment in the portal: devices waiting for acceptance (accept or reject each), and the
enrollment tokens devices enroll with (make one, shown once with the device's two commands;
revoke one)."""

from __future__ import annotations

import uuid

from flask import render_template, request
from werkzeug.wrappers import Response

from api.auth import actor
from api.effects import carried
from api.portal import bp
from api.portal.forms import FieldErrors, FormInvalid, done, json_value, load
from api.portal.sessions import admin_only
from dispatcher.fleet import enrollment
from dispatcher.outcome import Decided
from schemas.enrollment import EnrollmentTokenCreate

# Both lists are short in practice (a batch of devices, a handful of tokens); one page each.
LIST_LIMIT = 500


def _page(errors: FieldErrors | None = None, form: dict | None = None, status: int = 200):
    return render_template(
        "enrollment.html", pending=enrollment.list_pending_enrollments(LIST_LIMIT, 0),
        tokens=enrollment.list_enrollment_tokens(LIST_LIMIT, 0), errors=errors or {},
        form=form or {"device_type": "generic"}), status


def _decided(decision: Decided[dict], said: str) -> Response:
    """An operator's decision on a pending device, carried out: back to the pending devices,
    saying what became of it (``said``, with the device's ``{name}``)."""
    device = carried(decision)
    return done(said.format(name=device["device_name"]), "portal.pending_devices")


@bp.route("/devices/pending")
def pending_devices():
    return _page()


@bp.route("/devices/pending/<uuid:device_uuid>/accept", methods=["POST"])
@admin_only
def accept_device(device_uuid: uuid.UUID):
    return _decided(enrollment.accept_enrollment(device_uuid, actor()),
                    "Accepted {name}: it gets jobs from its next poll.")


@bp.route("/devices/pending/<uuid:device_uuid>/reject", methods=["POST"])
@admin_only
def reject_device(device_uuid: uuid.UUID):
    return _decided(enrollment.reject_enrollment(device_uuid, actor()),
                    "Rejected {name}: its token never works.")


@bp.route("/enrollment-tokens", methods=["POST"])
@admin_only
def create_enrollment_token():
    form = request.form.to_dict()
    errors: FieldErrors = {}
    body = {"name": form.get("name", ""), "device_type": form.get("device_type") or "generic",
            "attributes": json_value(form, "attributes", errors, {}),
            "requires_acceptance": form.get("requires_acceptance") == "on"}
    if form.get("expires_at"):
        body["expires_at"] = form["expires_at"]
    if form.get("max_uses"):
        uses = form["max_uses"].strip()
        body["max_uses"] = int(uses) if uses.isdigit() else uses
    if errors:
        return _page(errors, form, 400)
    try:
        fields = load(EnrollmentTokenCreate(), body)
    except FormInvalid as exc:
        return _page(exc.errors, form, 400)
    token, record = enrollment.create_enrollment_token(created_by=actor(), **fields)
    # Shown on this answer only; only its hash is stored.
    return render_template("enrollment_token.html", record=record, token=token,
                           server_url=request.host_url.rstrip("/"))


@bp.route("/enrollment-tokens/<int:token_id>/revoke", methods=["POST"])
@admin_only
def revoke_enrollment_token(token_id: int):
    record = enrollment.revoke_enrollment_token(token_id, actor())
    return done(f"Revoked {record['name']}: no device enrolls with it any more.",
                "portal.pending_devices")
