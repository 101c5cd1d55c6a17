"""A job's audit trail, and the runs of a recurring job."""

from __future__ import annotations

import uuid as uuid_mod

from flask.views import MethodView

from api.auth import read_access
from api.json_body import ResourceBlueprint
from dispatcher.jobs import progress
from dispatcher.policies import recurring
from schemas.common import PaginationQuery
from schemas.job_events import JobEventList, RecurringRunList

blp = ResourceBlueprint("job-events", __name__, description="Job audit trails and recurring runs")


@blp.route("/jobs/executions/<uuid:job_id>/events")
class JobEvents(MethodView):
    @blp.view(read_access, JobEventList, query=PaginationQuery)
    def get(self, query: dict, job_id: uuid_mod.UUID):
        """Every recorded change of this job and of its devices' executions, oldest first."""
        return progress.list_job_events(job_id, query["limit"], query["offset"])


@blp.route("/jobs/executions/<uuid:job_id>/runs")
class RecurringRuns(MethodView):
    @blp.view(read_access, RecurringRunList, query=PaginationQuery)
    def get(self, query: dict, job_id: uuid_mod.UUID):
        """The runs a recurring job has fired, newest slot first."""
        return recurring.list_runs(job_id, query["limit"], query["offset"])
