"""POST /jobs/execute: create an execution and queue its fan-out (admin)."""

from __future__ import annotations

from flask import current_app
from flask.views import MethodView

from api.auth import actor, write_access
from api.json_body import ResourceBlueprint
from dispatcher.jobs.create import create_execution
from schemas.execute import ExecuteJobRequest, ExecuteJobResponse

blp = ResourceBlueprint("execute", __name__, description="Execute a job on devices")


@blp.route("/jobs/execute")
class ExecuteJob(MethodView):
    @blp.arguments(ExecuteJobRequest)
    @blp.response(201, ExecuteJobResponse)
    @write_access
    def post(self, body: dict):
        """Execute a template or a custom job on one device, a group, or the whole fleet.

        Answers once the execution is stored; device rows are created in the background.
        """
        job = create_execution(body, actor(), current_app.config["SETTINGS"])
        total = job["total_devices"]
        return {"job": job, "message": f"Job created and queued for {total} device(s)"}
