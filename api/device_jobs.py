"""The device protocol: poll for the next job, report its status; and a device's job history."""

from __future__ import annotations

import uuid as uuid_mod

from flask import current_app
from flask.views import MethodView
from flask_smorest import Blueprint

from api.auth import actor, device_access, require
from api.nesting import refuse_deeply_nested_json
from dispatcher import device_jobs
from schemas.device_jobs import (
    DeviceJobList,
    DeviceJobListQuery,
    DeviceJobStatus,
    NextJob,
    StatusReport,
)

blp = Blueprint("device_jobs", __name__, description="Jobs as a device sees them")
refuse_deeply_nested_json(blp)

NO_PENDING_JOBS = "No pending jobs"


@blp.route("/devices/<uuid:uuid>/jobs/next")
class NextDeviceJob(MethodView):
    @blp.response(200, NextJob)
    @device_access
    def get(self, uuid: uuid_mod.UUID):
        """The job this device should run now: its IN_PROGRESS one, else its oldest QUEUED."""
        poll_after_s = current_app.config["SETTINGS"].poll_after_s
        job = device_jobs.next_job(uuid)
        if job is None:
            return {"message": NO_PENDING_JOBS, "poll_after_seconds": poll_after_s}
        return {**job, "poll_after_seconds": poll_after_s}


@blp.route("/devices/<uuid:uuid>/jobs")
class DeviceJobHistory(MethodView):
    @blp.arguments(DeviceJobListQuery, location="query")
    @blp.response(200, DeviceJobList)
    @require("device", "admin", "viewer")
    def get(self, query: dict, uuid: uuid_mod.UUID):
        """This device's executions, newest first (the device's own token, or admin/viewer)."""
        return device_jobs.list_device_jobs(
            uuid, query.get("status"), query["limit"], query["offset"]
        )


@blp.route("/devices/<uuid:uuid>/jobs/<uuid:job_id>/status")
class DeviceJobStatusReport(MethodView):
    @blp.arguments(StatusReport)
    @blp.response(200, DeviceJobStatus)
    @blp.alt_response(404, description="The device has no such job")
    @blp.alt_response(409, description="Refused by the state table, or a version mismatch; "
                      "the body carries current_status and version_number")
    @device_access
    def patch(self, report: dict, uuid: uuid_mod.UUID, job_id: uuid_mod.UUID):
        """Report progress or the result of this device's execution of a job."""
        settings = current_app.config["SETTINGS"]
        return device_jobs.report_status(uuid, job_id, report, settings.output_cap_bytes, actor())
