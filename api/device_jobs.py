"""The device protocol: poll for the next job, report its status; and a device's job history."""

from __future__ import annotations

import functools
import json
import uuid as uuid_mod
from collections.abc import Callable

from flask import current_app, request
from flask.views import MethodView

from api.auth import (
    actor,
    admit_device,
    device_token_hash,
    device_token_verified,
    note_authenticated_device,
    require,
)
from api.errors import abort
from api.json_body import ResourceBlueprint
from api.metrics import mark_poll
from dispatcher.jobs import reports
from dispatcher.poll import next_job
from dispatcher.sender import carry_out
from schemas.device_jobs import (
    DeviceJobList,
    DeviceJobListQuery,
    DeviceJobStatus,
    NextJob,
    StatusReport,
)

blp = ResourceBlueprint("device_jobs", __name__, description="Jobs as a device sees them")


def _documented_only(*decorators: Callable[[Callable], Callable]) -> Callable:
    """flask-smorest's documentation from ``decorators``, on a view that they do not wrap: a
    view that returns a finished response needs none of their work at run time."""

    def decorator(view: Callable) -> Callable:
        documented = functools.reduce(lambda inner, outer: outer(inner),
                                      reversed(decorators), view)
        view._apidoc = documented._apidoc  # type: ignore[attr-defined]
        return view

    return decorator


@blp.route("/devices/<uuid:uuid>/jobs/next", methods=["GET"])
@_documented_only(
    blp.response(200, NextJob),
    blp.alt_response(401, description="No token, or an unknown one"),
    blp.alt_response(403, description="Not this device's token"),
)
def next_device_job(uuid: uuid_mod.UUID):
    """The job this device should run now: its IN_PROGRESS one, else its oldest QUEUED.

    The device's own token only. The hottest path of the product, so it is kept lean: checking
    the token and finding the job are one query, whose verdict answers a refused token, and the
    answer is built without a schema dump. A device known to have nothing pending is answered
    from memory; ``Cache-Control: no-cache`` (sent by the agent on a poll an MQTT nudge caused)
    always asks the database.
    """
    settings = current_app.config["SETTINGS"]
    fresh = "no-cache" in request.headers.get("Cache-Control", "")
    polled = next_job.poll(uuid, device_token_hash(), fresh)
    if not polled.token_ok:
        admit_device(polled.verdict, uuid)
        abort(404, message=f"Device {uuid} not found")
    note_authenticated_device(uuid)
    mark_poll(handed_out_job=polled.job_id is not None)
    if polled.job_id is None:
        body = _no_job_answer(settings.poll_after_s)
    else:
        body = json.dumps(next_job.answer(polled, settings.poll_after_s))
    return current_app.response_class(body, mimetype="application/json")


@functools.lru_cache(maxsize=4)
def _no_job_answer(poll_after_s: int) -> str:
    """The answer most polls get, encoded once."""
    return json.dumps(next_job.no_job_answer(poll_after_s))


@blp.route("/devices/<uuid:uuid>/jobs")
class DeviceJobHistory(MethodView):
    @blp.view(require("device", "admin", "viewer"), DeviceJobList, query=DeviceJobListQuery)
    def get(self, query: dict, uuid: uuid_mod.UUID):
        """This device's executions, newest first (the device's own token, or admin/viewer)."""
        return reports.list_device_jobs(
            uuid, query.get("status"), query["limit"], query["offset"]
        )


@blp.route("/devices/<uuid:uuid>/jobs/<uuid:job_id>/status")
class DeviceJobStatusReport(MethodView):
    @device_token_verified
    @blp.arguments(StatusReport)
    @blp.response(200, DeviceJobStatus)
    @blp.alt_response(404, description="The device has no such job")
    @blp.alt_response(409, description="Refused by the state table, or a version mismatch; "
                      "the body carries current_status and version_number")
    def patch(self, report: dict, uuid: uuid_mod.UUID, job_id: uuid_mod.UUID):
        """Report progress or the result of this device's execution of a job.

        The device's own token only. One statement checks the token, applies the report and
        answers its verdict: a token that is not the device's is refused (401 or 403), else the
        row as stored, or 404 or 409 (or the row, for a repeated result).
        """
        settings = current_app.config["SETTINGS"]
        token_hash = device_token_hash()
        reporter = actor() if token_hash is None else f"device:{uuid}"
        reported = reports.apply_report(uuid, job_id, report, settings.output_cap_bytes,
                                        reporter, token_hash)
        admit_device(reported.verdict, uuid)
        carry_out(reported.outcome, settings)
        return reported.stored
