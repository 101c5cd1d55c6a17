"""Creating a job execution: its document, its target, its row, then its fan-out.

The execution and its audit event commit in one transaction; the fan-out is what the creation
leaves to do (its ``Outcome``), sent by the caller after that commit. From then on the job is
durable: if the broker is down the send is logged and skipped, and the stalled fan-out sweep
sends it later. The caller never waits for the fan-out itself, so
executing on a million devices answers as fast as executing on one.
"""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime

from marshmallow import ValidationError

from dispatcher import audit, db
from dispatcher.catalog.artifacts import pin_artifacts
from dispatcher.catalog.templates import get_template
from dispatcher.config import Settings
from dispatcher.errors import Conflict, InvalidInput
from dispatcher.jobs.documents import render_job_document
from dispatcher.jobs.pins import handler_steps, pin_handlers
from dispatcher.jobs.targeting import Target, count_target_devices, parse_target
from dispatcher.outcome import Decided, Outcome
from dispatcher.policies import columns
from dispatcher.signing import sign_job
from schemas.job_document import validate_job_document
from schemas.vocabulary import CONTINUOUS, RECURRING, SCHEDULED, TARGET_ALL, TARGET_GROUP

log = logging.getLogger(__name__)

# A job that needs approval but names no stages waits as one stage of every device.
APPROVAL_ONLY_STAGE = {"name": "all"}


def create_execution(body: dict, actor: str, settings: Settings) -> Decided[dict]:
    """Create an execution from a validated execute request; its fan-out is left to do.

    ``body`` holds the execute request's fields (``schemas.execute.ExecuteJobRequest``). Answers
    the job row, with ``total_devices`` the number of devices targeted at this moment.
    """
    template, document, target, execution_policies = _prepare(body, settings)
    now = datetime.now(UTC)
    policy_columns = columns.execution_columns(execution_policies, now)
    job_id = uuid.uuid4()
    with db.transaction() as c:
        total = count_target_devices(target, c)
        if total == 0 and not _waits_for_devices(policy_columns):
            raise _no_devices(target)
        document, artifact_ids = pin_artifacts(c, pin_handlers(c, document))
        ends = [t for t in (policy_columns["start_at"], policy_columns["end_at"]) if t]
        signed = sign_job(
            settings.signing_key_file, job_id, document, now, settings.signature_valid_s,
            target.device_uuids, policy_columns["execution_type"] == RECURRING,
            max(ends) if ends else None)
        job = c.row(
            "insert_job_execution",
            job_id=job_id,
            template_id=template["id"] if template else None,
            job_name=_job_name(body, template),
            job_document=db.jsonb(document),
            job_document_signature=signed.signature if signed else None,
            signed_job=signed.text if signed else None,
            parameters=db.jsonb(body.get("parameters") or {}),
            target_type=target.target_type,
            target_devices=list(target.device_uuids) if target.device_uuids else None,
            target_filter=db.jsonb(target.target_filter),
            target_group=target.group,
            total_devices=total,
            created_by=body.get("created_by") or actor,
            requires_approval=body.get("requires_approval", False),
            **policy_columns,
        )
        if artifact_ids:
            c.execute("insert_job_artifacts", job_id=job_id, artifact_ids=artifact_ids)
        if signed and signed.device_signatures:
            c.execute("insert_device_signatures", job_id=job_id,
                      devices=list(signed.device_signatures),
                      signatures=list(signed.device_signatures.values()))
        audit.record_event(
            c, actor, "job.created", "job", job_id, job_id=job_id,
            details={"job_name": job["job_name"], "template_id": job["template_id"],
                     "target_type": target.target_type, "total_devices": total},
        )
    log.info("job created job_id=%s target_type=%s total_devices=%d status=%s signed=%s",
             job_id, target.target_type, total, job["status"], signed is not None)
    job["handler_steps"] = handler_steps(document)
    fan_outs = [job_id] if job["status"] != SCHEDULED else []
    return Decided(job, Outcome(fan_outs=fan_outs))


def preview_execution(body: dict, settings: Settings) -> dict:
    """What ``create_execution(body)`` would create, refused for the same reasons, without
    writing anything: the rendered document, the merged policies, the status the job would
    start in and how many devices its target reaches now (a dry run for operators)."""
    template, document, target, execution_policies = _prepare(body, settings)
    policy_columns = columns.execution_columns(execution_policies, datetime.now(UTC))
    total = count_target_devices(target)
    if total == 0 and not _waits_for_devices(policy_columns):
        raise _no_devices(target)
    return {
        "job_name": _job_name(body, template),
        "template_id": template["id"] if template else None,
        "job_document": document,
        "parameters": body.get("parameters") or {},
        "target_type": target.target_type,
        "target_devices": list(target.device_uuids) if target.device_uuids else None,
        "target_filter": target.target_filter,
        "target_group": target.group,
        "total_devices": total,
        "status": policy_columns["status"],
        "next_run_at": policy_columns["next_run_at"],
        **columns.stored_policies(execution_policies),
    }


def _prepare(body: dict, settings: Settings) -> tuple[dict | None, dict, Target, dict]:
    """The template (if any), rendered document, target and merged policies of a request."""
    template = _active_template(body["template_id"]) if body.get("template_id") else None
    document = _job_document(template, body, settings.max_document_bytes)
    target = parse_target(body["target_type"], body.get("target_devices"),
                          body.get("target_filter"), body.get("group"))
    execution_policies = columns.merged_policies(template, body)
    columns.check_policies(execution_policies, target.target_type)
    if body.get("requires_approval") and not execution_policies.get("stages"):
        execution_policies["stages"] = [dict(APPROVAL_ONLY_STAGE)]
    stage_targets = [_check_stage_filter(number, stage)
                     for number, stage in enumerate(execution_policies.get("stages") or ())]
    if not settings.targeting_inventory_allowed and (
            settings.signing_key_file or body.get("requires_approval")):
        _refuse_inventory_targets(target, stage_targets)
    return template, document, target, execution_policies


def _refuse_inventory_targets(target: Target, stage_targets: list[Target | None]) -> None:
    """With TARGETING_INVENTORY_ALLOWED off, a signed or approval-held job may not be aimed by
    what devices say about themselves: a device could report its way into it."""
    if target.names_inventory:
        field = "group" if target.group else "target_filter"
        raise InvalidInput(
            "This job is signed or needs approval, and TARGETING_INVENTORY_ALLOWED is off: its "
            "target may not name device-reported inventory (inventory., system.agent_version)",
            errors={field: ["Names device-reported inventory."]})
    for number, stage in enumerate(stage_targets):
        if stage is not None and stage.names_inventory:
            raise InvalidInput(
                "This job is signed or needs approval, and TARGETING_INVENTORY_ALLOWED is off: "
                "a stage filter may not name device-reported inventory",
                errors={"stages": {number: {"target_filter": [
                    "Names device-reported inventory."]}}})


def _check_stage_filter(number: int, stage: dict) -> Target | None:
    """A stage's target_filter is a group filter; refused as the job's own would be."""
    if stage.get("target_filter") is None:
        return None
    try:
        return parse_target(TARGET_GROUP, None, stage["target_filter"])
    except InvalidInput as exc:
        raise InvalidInput(f"Invalid target_filter of stage {stage['name']!r}: {exc}",
                           errors={"stages": {number: {"target_filter": [str(exc)]}}}) from None


def _job_name(body: dict, template: dict | None) -> str:
    """The request's name, else the template's (the schema wants one for a custom document)."""
    return body.get("job_name") or (template or {})["name"]


def _active_template(template_id: int) -> dict:
    template = get_template(template_id)
    if not template["is_active"]:
        raise Conflict(
            f"Job template {template_id} ({template['name']}) is inactive; "
            "activate it or execute another template",
            errors={"template_id": ["Template is inactive."]},
        )
    return template


def _job_document(template: dict | None, body: dict, max_bytes: int) -> dict:
    """The document the devices will run: the template's or the custom one, rendered."""
    if template is None:
        source, declared = body["job_document"], {}
    else:
        source, declared = template["job_document"], template["parameters"]
    rendered = render_job_document(source, declared, body.get("parameters") or {})
    try:
        return validate_job_document(rendered, max_bytes)
    except ValidationError as exc:
        what = "job document" if template is None else "job document rendered from the template"
        raise InvalidInput(f"Invalid {what}", errors={"job_document": exc.messages}) from None


def _waits_for_devices(policy_columns: dict) -> bool:
    """A continuous job follows its target as devices come and change, so it may start with
    none: a group of devices that do not exist yet, or not yet report what it asks for."""
    return policy_columns["execution_type"] == CONTINUOUS


def _no_devices(target: Target) -> InvalidInput:
    # A device list is never empty here: the schema wants one device, and unknown ones are
    # refused by name before counting.
    if target.target_type == TARGET_ALL:
        return InvalidInput("No devices are registered", errors={"target_type": [
            "There are no devices to run the job on."]})
    return InvalidInput("No devices match target_filter", errors={"target_filter": [
        "No registered device matches this filter."]})
