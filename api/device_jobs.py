"""The device protocol: poll for the next job, report its status; and a device's job history."""

from __future__ import annotations

import functools
import inspect
import json
import uuid as uuid_mod

from flask import current_app, request
from flask.views import MethodView

from api.auth import actor, authorize, bearer_token, device_tokens_seen, require
from api.errors import abort
from api.json_body import ResourceBlueprint
from api.metrics import mark_poll
from dispatcher.jobs import reports
from dispatcher.jobs.outcome import carry_out
from dispatcher.poll import next_job
from dispatcher.tokens import hash_token
from schemas.device_jobs import (
    DeviceJobList,
    DeviceJobListQuery,
    DeviceJobStatus,
    NextJob,
    StatusReport,
)

blp = ResourceBlueprint("device_jobs", __name__, description="Jobs as a device sees them")


@blp.route("/devices/<uuid:uuid>/jobs/next", methods=["GET"])
@blp.response(200, NextJob)
@blp.alt_response(401, description="No token, or an unknown one")
@blp.alt_response(403, description="Not this device's token")
def next_device_job(uuid: uuid_mod.UUID):
    """The job this device should run now: its IN_PROGRESS one, else its oldest QUEUED.

    The device's own token only. The hottest path of the product, so it is kept lean: checking
    the token and finding the job are one query, and the answer is built without a schema dump.
    A device known to have nothing pending is answered from memory; ``Cache-Control: no-cache``
    (sent by the agent on a poll an MQTT nudge caused) always asks the database.
    """
    settings = current_app.config["SETTINGS"]
    token_hash = None if settings.auth_disabled else hash_token(bearer_token() or "")
    fresh = "no-cache" in request.headers.get("Cache-Control", "")
    polled = next_job.poll(uuid, token_hash, fresh)
    if polled is None:
        # Not this device's token: the general check answers 401 or 403.
        authorize(("device",), uuid)
        abort(404, message=f"Device {uuid} not found")
    if token_hash is not None:
        device_tokens_seen.note(token_hash, uuid)
    mark_poll(handed_out_job=polled.job_id is not None)
    if polled.job_id is None:
        body = _no_job_answer(settings.poll_after_s)
    else:
        body = json.dumps(next_job.answer(polled, settings.poll_after_s))
    return current_app.response_class(body, mimetype="application/json")


@blp.record
def _serve_the_plain_poll_view(state) -> None:
    # The response decorators above document the view; at run time they only unpack what a view
    # returns, and the poll returns a finished response: the app calls the function itself.
    endpoint = f"{state.name}.{next_device_job.__name__}"
    state.app.view_functions[endpoint] = inspect.unwrap(next_device_job)


@functools.lru_cache(maxsize=4)
def _no_job_answer(poll_after_s: int) -> str:
    """The answer most polls get, encoded once."""
    return json.dumps(next_job.no_job_answer(poll_after_s))


@blp.route("/devices/<uuid:uuid>/jobs")
class DeviceJobHistory(MethodView):
    @blp.arguments(DeviceJobListQuery, location="query")
    @blp.response(200, DeviceJobList)
    @require("device", "admin", "viewer")
    def get(self, query: dict, uuid: uuid_mod.UUID):
        """This device's executions, newest first (the device's own token, or admin/viewer)."""
        return reports.list_device_jobs(
            uuid, query.get("status"), query["limit"], query["offset"]
        )


@blp.route("/devices/<uuid:uuid>/jobs/<uuid:job_id>/status")
class DeviceJobStatusReport(MethodView):
    @blp.arguments(StatusReport)
    @blp.response(200, DeviceJobStatus)
    @blp.alt_response(404, description="The device has no such job")
    @blp.alt_response(409, description="Refused by the state table, or a version mismatch; "
                      "the body carries current_status and version_number")
    def patch(self, report: dict, uuid: uuid_mod.UUID, job_id: uuid_mod.UUID):
        """Report progress or the result of this device's execution of a job.

        The device's own token only. Checking the token is part of the one statement that
        applies the report; when that statement moves nothing, the general check answers 401
        or 403 and the checked path explains a 404 or 409 (or accepts a repeated result).
        """
        settings = current_app.config["SETTINGS"]
        cap = settings.output_cap_bytes
        if settings.auth_disabled:
            stored = reports.apply_report(uuid, job_id, report, cap, actor(), None)
        else:
            token_hash = hash_token(bearer_token() or "")
            stored = reports.apply_report(uuid, job_id, report, cap, f"device:{uuid}",
                                              token_hash)
        if stored is None:
            authorize(("device",), uuid)
            stored = reports.report_status(uuid, job_id, report, cap, actor())
        carry_out(reports.after_report(stored), settings)
        return stored

    # The token is checked by the statement that applies the report; before the body is read,
    # only a token this process has not seen for the device is looked up (see api.auth).
    checks_device_token = True
