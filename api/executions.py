"""Executions for operators: progress with live counters, cancel and retry."""

from __future__ import annotations

import uuid as uuid_mod

from flask import url_for
from flask.views import MethodView

from api.auth import actor, read_access, write_access
from api.effects import carried, settings
from api.json_body import ResourceBlueprint
from dispatcher.jobs import control, progress
from dispatcher.policies import rollout_control
from schemas.device_jobs import DeviceJobStatus
from schemas.executions import (
    CancelRequest,
    ExecutionCanceled,
    ExecutionDetail,
    ExecutionDeviceList,
    ExecutionDevicesQuery,
    ExecutionList,
    ExecutionListQuery,
    ExecutionRetried,
)
from schemas.rollouts import Rollout

blp = ResourceBlueprint(
    "executions", __name__, description="Job executions: progress, cancel, retry"
)


@blp.route("/jobs/executions")
class Executions(MethodView):
    @blp.view(read_access, ExecutionList, query=ExecutionListQuery)
    def get(self, query: dict):
        """Executions, newest first, each with live device counters."""
        return progress.list_executions(query.get("status"), query["limit"], query["offset"])


@blp.route("/jobs/executions/<uuid:job_id>")
class Execution(MethodView):
    @blp.view(read_access, ExecutionDetail)
    def get(self, job_id: uuid_mod.UUID):
        """One execution with live counters, its first devices, and its staged rollout."""
        detail = progress.execution_detail(job_id)
        if detail["job"].get("stages") is not None:
            detail["rollout"] = rollout_control.rollout(job_id)
        return {**detail, "device_statuses_url": url_for("executions.ExecutionDevices",
                                                         job_id=job_id)}


@blp.route("/jobs/executions/<uuid:job_id>/devices")
class ExecutionDevices(MethodView):
    @blp.view(read_access, ExecutionDeviceList, query=ExecutionDevicesQuery)
    def get(self, query: dict, job_id: uuid_mod.UUID):
        """Every device of an execution (its latest execution number), by device uuid."""
        return progress.list_execution_devices(
            job_id, query.get("status"), query["limit"], query["offset"]
        )


@blp.route("/jobs/executions/<uuid:job_id>/cancel")
class ExecutionCancel(MethodView):
    @blp.view(write_access, ExecutionCanceled, body=CancelRequest, body_required=False)
    def post(self, body: dict, job_id: uuid_mod.UUID):
        """Cancel: QUEUED devices are canceled; IN_PROGRESS ones too with force."""
        result = carried(control.cancel_execution(
            job_id, actor(), force=body["force"], reason=body.get("reason"),
        ))
        return {**result, "message": f"Job canceled for {result['canceled_devices']} device(s)"}


@blp.route("/jobs/executions/<uuid:job_id>/retry")
class ExecutionRetry(MethodView):
    @blp.view(write_access, ExecutionRetried)
    def post(self, job_id: uuid_mod.UUID):
        """Queue again every device whose execution failed, timed out or was rejected."""
        result = carried(control.retry_execution(job_id, actor()))
        return {**result, "message": f"Job queued again for {result['retried_devices']} device(s)"}


def _rollout_action(name: str, action, summary: str) -> None:
    """POST /jobs/executions/:jobId/<name>: an admin's hand on a staged rollout."""
    def post(self, job_id: uuid_mod.UUID):
        return carried(action(job_id, actor(), settings()))

    post.__doc__ = summary
    view = type(f"Rollout{name.title()}", (MethodView,), {
        "post": blp.response(200, Rollout)(
            blp.alt_response(409, description="The action does not apply to the rollout's "
                             "state; the body carries rollout_state")(write_access(post)))})
    blp.route(f"/jobs/executions/<uuid:job_id>/{name}")(view)


_rollout_action("pause", rollout_control.pause_rollout,
                "Pause a running staged rollout: nothing more is handed out.")
_rollout_action("resume", rollout_control.resume_rollout,
                "Resume a paused rollout; after a failed gate its failures are acknowledged "
                "and the next stage is released.")
_rollout_action("promote", rollout_control.promote_stage,
                "Pass the current stage's gate now and release the next stage.")
_rollout_action("approve", rollout_control.approve_rollout,
                "Start a job created with requires_approval (another admin than its creator "
                "with APPROVAL_BY_OTHER_ADMIN).")


@blp.route("/devices/<uuid:uuid>/jobs/<uuid:job_id>/cancel")
class DeviceJobCancel(MethodView):
    @blp.view(write_access, DeviceJobStatus, body=CancelRequest, body_required=False)
    def post(self, body: dict, uuid: uuid_mod.UUID, job_id: uuid_mod.UUID):
        """Cancel one device's execution (IN_PROGRESS only with force)."""
        return carried(control.cancel_device_job(
            job_id, uuid, actor(), force=body["force"], reason=body.get("reason"),
        ))


@blp.route("/devices/<uuid:uuid>/jobs/<uuid:job_id>/retry")
class DeviceJobRetry(MethodView):
    @blp.view(write_access, DeviceJobStatus)
    def post(self, uuid: uuid_mod.UUID, job_id: uuid_mod.UUID):
        """Queue one device's failed execution again, with the next execution number."""
        return carried(control.retry_device_job(job_id, uuid, actor()))
