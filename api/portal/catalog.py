"""Templates and handlers: lists, create/edit with the API's schemas, activate, delete, and a
template's "Test on device"."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable

from flask import current_app, flash, redirect, render_template, request, url_for

from api.auth import actor
from api.effects import carried, settings
from api.portal import bp
from api.portal.forms import FieldErrors, FormInvalid, done, invalid_input_errors, json_value, load
from api.portal.sessions import admin_only
from dispatcher.catalog import handlers, templates
from dispatcher.errors import Conflict, InvalidInput
from dispatcher.fleet import devices
from dispatcher.jobs.create import create_execution
from schemas.handlers import SCRIPT_TYPES, HandlerCreate, HandlerUpdate
from schemas.templates import CATEGORIES, TemplateCreate, TemplateUpdate
from schemas.vocabulary import TARGET_DEVICE

PAGE_SIZE = 50
DEVICES_OFFERED = 200


def _max_document_bytes() -> int:
    return current_app.config["SETTINGS"].max_document_bytes


@bp.route("/templates")
def template_list():
    category = request.args.get("category") or None
    active = {"yes": True, "no": False}.get(request.args.get("active", ""))
    name = (request.args.get("name") or "").strip()
    listing = templates.search_templates(name, category, active, PAGE_SIZE, 0)
    return render_template("templates.html", listing=listing, categories=CATEGORIES,
                           category=category, active=request.args.get("active", ""), name=name)


def _template_form_body(form: dict, errors: FieldErrors) -> dict:
    return {
        "name": form.get("name", ""),
        "category": form.get("category") or "custom",
        "description": form.get("description") or None,
        "job_document": json_value(form, "job_document", errors, {}),
        "parameters": json_value(form, "parameters", errors, {}),
        "is_active": form.get("is_active") == "on",
    }


def _save_template(template_id: int | None):
    form = request.form.to_dict()
    errors: FieldErrors = {}
    body = _template_form_body(form, errors)
    if not errors:
        saved, errors = _saved_or_errors(lambda: _store_template(template_id, body))
        if saved:
            return redirect(saved)
    current = templates.get_template(template_id) if template_id else None
    return render_template("template_form.html", form=form, errors=errors, template=current,
                           categories=CATEGORIES), 400


def _store_template(template_id: int | None, body: dict) -> str:
    if template_id is None:
        template = templates.create_template(load(TemplateCreate(), body), actor(),
                                             _max_document_bytes())
        flash(f"Template {template['name']} created.", "ok")
    else:
        template, changed = templates.update_template(
            template_id, load(TemplateUpdate(), body), actor(), _max_document_bytes())
        flash(f"Template saved: {', '.join(changed) or 'nothing'} changed.", "ok")
    return url_for("portal.template_page", template_id=template["id"])


def _saved_or_errors(store: Callable[[], str]) -> tuple[str | None, FieldErrors]:
    """``store`` a template or handler from its form: the page to go to next, or else the
    errors to show in the form again (a name taken is an error of the name)."""
    try:
        return store(), {}
    except FormInvalid as exc:
        return None, exc.errors
    except InvalidInput as exc:
        return None, invalid_input_errors(exc)
    except Conflict as exc:
        return None, {"name": [exc.message]}


@bp.route("/templates/new")
def new_template():
    form = {"category": "custom", "is_active": "on",
            "job_document": '{\n  "version": "1.0",\n  "includeStdOut": true,\n  "steps": [\n'
            '    {"name": "Say hello", "type": "runCommand",\n'
            '     "input": {"command": "echo,{{GREETING}}"}}\n  ]\n}',
            "parameters": '{"GREETING": "hello"}'}
    return render_template("template_form.html", form=form, errors={}, template=None,
                           categories=CATEGORIES)


@bp.route("/templates/new", methods=["POST"])
@admin_only
def create_template():
    return _save_template(None)


@bp.route("/templates/<int:template_id>")
def template_page(template_id: int):
    template = templates.get_template(template_id)
    offered = devices.list_devices({}, DEVICES_OFFERED, 0)["devices"]
    return render_template("template.html", template=template, devices=offered)


@bp.route("/templates/<int:template_id>/edit")
def edit_template(template_id: int):
    template = templates.get_template(template_id)
    form = {"name": template["name"], "category": template["category"],
            "description": template["description"] or "",
            "job_document": _pretty(template["job_document"]),
            "parameters": _pretty(template["parameters"]),
            "is_active": "on" if template["is_active"] else ""}
    return render_template("template_form.html", form=form, errors={}, template=template,
                           categories=CATEGORIES)


def _pretty(value: object) -> str:
    return json.dumps(value, indent=2)


@bp.route("/templates/<int:template_id>/edit", methods=["POST"])
@admin_only
def update_template(template_id: int):
    return _save_template(template_id)


@bp.route("/templates/<int:template_id>/active", methods=["POST"])
@admin_only
def set_template_active(template_id: int):
    active = request.form.get("is_active") == "1"
    template, _ = templates.update_template(template_id, {"is_active": active}, actor(),
                                            _max_document_bytes())
    return done(f"Template {template['name']} {'activated' if active else 'deactivated'}.",
                "portal.template_page", template_id=template_id)


@bp.route("/templates/<int:template_id>/delete", methods=["POST"])
@admin_only
def delete_template(template_id: int):
    template = templates.delete_template(template_id, actor())
    return done(f"Template {template['name']} deleted.", "portal.template_list")


@bp.route("/templates/<int:template_id>/test", methods=["POST"])
@admin_only
def test_template(template_id: int):
    """Run the template on one device (its parameters' defaults) and land on that execution."""
    try:
        device_uuid = uuid.UUID(request.form.get("device_uuid", ""))
    except ValueError:
        flash("Pick a device to test the template on.", "bad")
        return redirect(url_for("portal.template_page", template_id=template_id))
    template = templates.get_template(template_id)
    try:
        job = carried(create_execution(
            {"template_id": template_id, "job_name": f"{template['name']} (test)",
             "target_type": TARGET_DEVICE, "target_devices": [device_uuid], "parameters": {}},
            actor(), settings()))
    except (InvalidInput, Conflict) as exc:
        flash(f"Not started: {exc.message}", "bad")
        return redirect(url_for("portal.template_page", template_id=template_id))
    return done("Test execution created on 1 device.", "portal.execution", job_id=job["job_id"])


@bp.route("/handlers")
def handler_list():
    return render_template("handlers.html", listing=handlers.list_handlers(PAGE_SIZE, 0))


@bp.route("/handlers/new")
def new_handler():
    return render_template("handler_form.html", form={"script_type": "bash", "permissions": "700"},
                           errors={}, handler=None, script_types=SCRIPT_TYPES)


@bp.route("/handlers/<name>")
def handler_page(name: str):
    handler = handlers.get_handler(name)
    form = {**handler, "default_args": "\n".join(handler.get("default_args") or [])}
    return render_template("handler_form.html", form=form, errors={}, handler=handler,
                           script_types=SCRIPT_TYPES)


def _handler_body(form: dict) -> dict:
    return {
        "description": form.get("description") or None,
        "script_type": form.get("script_type", ""),
        "script_content": form.get("script_content", "").replace("\r\n", "\n"),
        "permissions": form.get("permissions", ""),
        "default_args": [line for line in form.get("default_args", "").splitlines() if line],
    }


@bp.route("/handlers/new", methods=["POST"])
@admin_only
def create_handler():
    return _save_handler(None)


@bp.route("/handlers/<name>", methods=["POST"])
@admin_only
def update_handler(name: str):
    return _save_handler(name)


def _save_handler(name: str | None):
    form = request.form.to_dict()
    body = _handler_body(form)
    saved, errors = _saved_or_errors(lambda: _store_handler(name, form, body))
    if saved:
        return redirect(saved)
    current = handlers.get_handler(name) if name else None
    return render_template("handler_form.html", form=form, errors=errors, handler=current,
                           script_types=SCRIPT_TYPES), 400


def _store_handler(name: str | None, form: dict, body: dict) -> str:
    if name is None:
        handler = handlers.create_handler(
            load(HandlerCreate(), {"name": form.get("name", ""), **body}), actor())
        flash(f"Handler {handler['name']} created, sha256 {handler['script_sha256']}.", "ok")
    else:
        handler, changed = handlers.update_handler(name, load(HandlerUpdate(), body), actor())
        flash(f"Handler saved: {', '.join(changed) or 'nothing'} changed.", "ok")
    return url_for("portal.handler_page", name=handler["name"])
