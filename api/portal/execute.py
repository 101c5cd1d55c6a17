"""The execute form: a template (a field per declared parameter) or a custom document, on
devices, a group or the whole fleet, with optional policies; and the live "N devices match".

The form is turned into the body POST /jobs/execute takes and loaded with its schema
(``schemas.execute.ExecuteJobRequest``), then ``create_execution`` checks what only the
dispatcher can (targets, policies, parameters): both kinds of error land next to their field.
"""

from __future__ import annotations

import uuid

from flask import jsonify, render_template, request

from api.auth import actor
from api.effects import carried, settings
from api.portal import bp, rollouts
from api.portal.forms import (
    FieldErrors,
    FormInvalid,
    done,
    group_filter,
    invalid_input_errors,
    json_value,
    load,
    uuid_texts,
)
from api.portal.sessions import admin_only
from dispatcher.catalog import templates
from dispatcher.errors import DispatcherError, InvalidInput, NotFound
from dispatcher.fleet import devices, groups
from dispatcher.jobs.create import create_execution
from dispatcher.jobs.targeting import count_target_devices, parse_target
from schemas.execute import ExecuteJobRequest
from schemas.policies import POLICY_FIELDS
from schemas.vocabulary import TARGET_ALL, TARGET_DEVICE, TARGET_GROUP, TARGET_TYPES

TEMPLATES_OFFERED = 200
DEVICES_OFFERED = 200
# Where each request field's errors are shown on the form.
FIELD_OF = {"target_filter": "attributes", **{name: "policies" for name in POLICY_FIELDS},
            "stages": "stages", "requires_approval": "stages"}


def _form_context(form: dict, errors: FieldErrors) -> dict:
    template = None
    template_id = form.get("template_id")
    if template_id and template_id.isdigit():
        try:
            template = templates.get_template(int(template_id))
        except DispatcherError:
            template = None
    return {
        "form": form, "errors": errors, "template": template,
        "templates": templates.list_templates(None, True, TEMPLATES_OFFERED, 0)["templates"],
        "devices": devices.list_devices({}, DEVICES_OFFERED, 0)["devices"],
        "target_types": TARGET_TYPES,
        "groups": groups.list_groups(200, 0)["groups"],
        "stage_rows": rollouts.stage_rows(request.form), "stage_preset": rollouts.PRESET_ROWS,
    }


@bp.route("/executions/new")
def new_execution():
    form = {"source": "template", "target_type": TARGET_GROUP, **request.args.to_dict()}
    return render_template("execute.html", **_form_context(form, {}))


@bp.route("/executions/new", methods=["POST"])
@admin_only
def execute():
    form = request.form.to_dict()
    form["target_devices"] = "\n".join(request.form.getlist("target_devices"))
    errors: FieldErrors = {}
    body = execute_request(form, errors)
    body.update(rollouts.stage_fields(request.form, errors))
    if not errors:
        try:
            job = carried(create_execution(load(ExecuteJobRequest(), body, FIELD_OF), actor(),
                                           settings()))
        except FormInvalid as exc:
            errors = exc.errors
        except InvalidInput as exc:
            errors = invalid_input_errors(exc, FIELD_OF)
        else:
            return done(f"Job created and queued for {job['total_devices']} device(s).",
                        "portal.execution", job_id=job["job_id"])
    return render_template("execute.html", **_form_context(form, errors)), 400


def execute_request(form: dict, errors: FieldErrors) -> dict:
    """The execute request the form stands for (JSON syntax errors go to ``errors``)."""
    body: dict = {"target_type": form.get("target_type") or ""}
    if form.get("job_name"):
        body["job_name"] = form["job_name"]
    if form.get("source") == "custom":
        body["job_document"] = json_value(form, "job_document", errors, {})
        body["parameters"] = json_value(form, "parameters", errors, {})
    else:
        template_id = form.get("template_id") or ""
        if template_id:
            # Not a number: left as text, so the schema names the field.
            body["template_id"] = int(template_id) if template_id.isdigit() else template_id
        body["parameters"] = {name[len("param_"):]: value for name, value in form.items()
                              if name.startswith("param_") and value != ""}
    if body["target_type"] == TARGET_DEVICE:
        body["target_devices"] = uuid_texts(form.get("target_devices", ""))
    elif body["target_type"] == TARGET_GROUP and form.get("group_name"):
        body["group"] = form["group_name"]
    elif body["target_type"] == TARGET_GROUP:
        body["target_filter"] = group_filter(form, errors)
    policies = json_value(form, "policies", errors, {})
    if isinstance(policies, dict):
        body.update({name: value for name, value in policies.items() if name in POLICY_FIELDS})
        unknown = sorted(set(policies) - set(POLICY_FIELDS))
        if unknown:
            errors.setdefault("policies", []).append(
                f"Unknown policy field(s): {', '.join(unknown)}; known: {', '.join(POLICY_FIELDS)}")
    elif policies is not None:
        errors.setdefault("policies", []).append("Must be a JSON object.")
    return body


@bp.route("/targets/count")
def target_count():
    """How many devices a target reaches now: ``{"devices": N}`` or ``{"error": ...}``."""
    errors: FieldErrors = {}
    target_type = request.args.get("target_type", TARGET_GROUP)
    try:
        if target_type == TARGET_GROUP and request.args.get("group"):
            target = parse_target(TARGET_GROUP, group=request.args["group"])
        elif target_type == TARGET_GROUP:
            target_filter = group_filter(request.args.to_dict(), errors)
            if errors:
                return jsonify(error=" ".join(errors["attributes"])), 400
            target = parse_target(TARGET_GROUP, target_filter=target_filter)
        elif target_type == TARGET_ALL:
            target = parse_target(TARGET_ALL)
        else:
            uuids = [uuid.UUID(u) for u in uuid_texts(request.args.get("target_devices", ""))]
            target = parse_target(TARGET_DEVICE, target_devices=uuids)
        return jsonify(devices=count_target_devices(target))
    except (InvalidInput, NotFound) as exc:
        return jsonify(error=exc.message), 400
    except ValueError:
        return jsonify(error="Not a device uuid"), 400
