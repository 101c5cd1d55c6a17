"""POST /jobs/execute: create an execution and queue its fan-out (admin); POST
/jobs/execute/preview: what it would create, without creating it."""

from __future__ import annotations

from flask.views import MethodView

from api.auth import actor, read_access, write_access
from api.effects import carried, settings
from api.json_body import ResourceBlueprint
from dispatcher.jobs.create import create_execution, preview_execution
from schemas.execute import ExecuteJobRequest, ExecuteJobResponse, ExecutePreview

blp = ResourceBlueprint("execute", __name__, description="Execute a job on devices")


@blp.route("/jobs/execute")
class ExecuteJob(MethodView):
    @blp.view(write_access, ExecuteJobResponse, 201, body=ExecuteJobRequest)
    def post(self, body: dict):
        """Execute a template or a custom job on one device, a group, or the whole fleet.

        Answers once the execution is stored; device rows are created in the background.
        """
        job = carried(create_execution(body, actor(), settings()))
        total = job["total_devices"]
        return {"job": job, "message": f"Job created and queued for {total} device(s)"}


@blp.route("/jobs/execute/preview")
class PreviewJob(MethodView):
    @blp.view(read_access, ExecutePreview, body=ExecuteJobRequest)
    def post(self, body: dict):
        """Check an execute request and show what it would create: the rendered document, the
        policies, and how many devices match now. Nothing is stored, queued or audited."""
        return preview_execution(body, settings())
