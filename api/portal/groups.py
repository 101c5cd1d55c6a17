"""Groups: the list, a group's page (its filter or devices, its members now), saving the devices
page's filter as a group, editing one, and deleting one that no unfinished job targets."""

from __future__ import annotations

import json

from flask import flash, redirect, render_template, request, url_for

from api.auth import actor
from api.effects import carried
from api.portal import bp, forms
from api.portal.forms import FieldErrors, done, json_value
from api.portal.sessions import admin_only
from dispatcher.errors import Conflict, InvalidInput
from dispatcher.fleet import devices, groups
from schemas.groups import GroupPatch

PAGE_SIZE = 50


@bp.route("/groups")
def group_list():
    listing = groups.list_groups(200, 0)
    return render_template("groups.html", listing=listing)


@bp.route("/groups/<string:name>")
def group_page(name: str):
    group = groups.get_group(name)
    if group["filter"] is not None:
        members = devices.list_devices(group["filter"], PAGE_SIZE, 0)["devices"]
    else:
        members = [devices.get_device(u) for u in group["devices"][:PAGE_SIZE]]
    return render_template("group.html", group=group, members=members, page_size=PAGE_SIZE)


@bp.route("/groups", methods=["POST"])
@admin_only
def save_group():
    """Save the devices page's filter as a dynamic group."""
    form = request.form.to_dict()
    errors: FieldErrors = {}
    target_filter = json_value(form, "filter", errors, {})
    if not errors:
        try:
            group = carried(groups.create_group(
                {"name": form.get("name", "").strip(), "filter": target_filter,
                 "description": form.get("description", "")}, actor()))
        except (InvalidInput, Conflict) as exc:
            errors = {"name": [exc.message]}
        else:
            return done(f"Group {group['name']} saved: {group['member_count']} device(s) now.",
                        "portal.group_page", name=group["name"])
    flash("Not saved: " + " ".join(m for ms in errors.values() for m in ms), "error")
    return redirect(request.referrer or url_for("portal.device_list"))


@bp.route("/groups/<string:name>/edit")
@admin_only
def edit_group(name: str):
    group = groups.get_group(name)
    form = {"description": group["description"]}
    if group["filter"] is not None:
        form["filter"] = json.dumps(group["filter"], indent=2)
    else:
        form["devices"] = "\n".join(str(u) for u in group["devices"])
    return render_template("group_form.html", group=group, form=form, errors={})


@bp.route("/groups/<string:name>/edit", methods=["POST"])
@admin_only
def update_group(name: str):
    """Save the edit form through the API's schema and rules; refused changes come back on the
    form, each message next to its field (a bad filter: the part that is wrong)."""
    group = groups.get_group(name)
    form = request.form.to_dict()
    errors: FieldErrors = {}
    body: dict = {"description": form.get("description", "")}
    if group["filter"] is not None:
        target_filter = json_value(form, "filter", errors, {})
        if not isinstance(target_filter, dict):
            errors.setdefault("filter", []).append("Must be a JSON object.")
        body["filter"] = target_filter
    else:
        body["devices"] = forms.uuid_texts(form.get("devices", ""))
    if not errors:
        try:
            saved = carried(groups.update_group(name, forms.load(GroupPatch(), body), actor()))
        except forms.FormInvalid as exc:
            errors = exc.errors
        except InvalidInput as exc:
            errors = forms.invalid_input_errors(exc)
        else:
            flash(f"Group {name} saved: {saved['member_count']} device(s) now.", "ok")
            return redirect(url_for("portal.group_page", name=name))
    return render_template("group_form.html", group=group, form=form, errors=errors), 400


@bp.route("/groups/<string:name>/delete", methods=["POST"])
@admin_only
def group_delete(name: str):
    try:
        groups.delete_group(name, actor())
    except Conflict as exc:
        flash(exc.message, "error")
        return redirect(url_for("portal.group_page", name=name))
    return done(f"Group {name} deleted.", "portal.group_list")
