"""Enrollment tokens and pending enrollments (admin); the device's side is api.device_enroll."""

from __future__ import annotations

import uuid as uuid_mod

from flask.views import MethodView

from api.auth import actor, read_access, write_access
from api.effects import carried
from api.headers import NO_STORE
from api.json_body import ResourceBlueprint
from dispatcher.fleet import enrollment
from schemas.devices import DeviceSchema
from schemas.enrollment import (
    EnrollmentTokenCreate,
    EnrollmentTokenCreated,
    EnrollmentTokenList,
    EnrollmentTokenSchema,
    PendingEnrollmentList,
    PendingEnrollmentSchema,
)

blp = ResourceBlueprint("enrollment", __name__,
                        description="Enrollment tokens and devices that enroll with them")


@blp.route("/enrollment-tokens")
class EnrollmentTokens(MethodView):
    get = blp.page(read_access, EnrollmentTokenList, enrollment.list_enrollment_tokens,
                   "Enrollment tokens, newest first (never the tokens themselves).")

    @blp.view(write_access, EnrollmentTokenCreated, 201, body=EnrollmentTokenCreate)
    def post(self, body: dict):
        """Make an enrollment token; the answer carries it, shown only this once."""
        token, record = enrollment.create_enrollment_token(created_by=actor(), **body)
        return {**record, "enrollment_token": token}, NO_STORE


@blp.route("/enrollment-tokens/<int:token_id>/revoke")
class EnrollmentTokenRevocation(MethodView):
    @blp.view(write_access, EnrollmentTokenSchema)
    def post(self, token_id: int):
        """Revoke an enrollment token: devices enrolled with it stay, no new one enrolls."""
        return enrollment.revoke_enrollment_token(token_id, actor())


@blp.route("/devices/pending")
class PendingEnrollments(MethodView):
    get = blp.page(read_access, PendingEnrollmentList, enrollment.list_pending_enrollments,
                   "Devices that enrolled with a token requiring acceptance, oldest first.")


@blp.route("/devices/pending/<uuid:uuid>/accept")
class EnrollmentAcceptance(MethodView):
    @blp.view(write_access, DeviceSchema, 201)
    def post(self, uuid: uuid_mod.UUID):
        """Accept a pending device: it becomes a device and gets jobs from its next poll."""
        return carried(enrollment.accept_enrollment(uuid, actor()))


@blp.route("/devices/pending/<uuid:uuid>/reject")
class EnrollmentRejection(MethodView):
    @blp.view(write_access, PendingEnrollmentSchema)
    def post(self, uuid: uuid_mod.UUID):
        """Reject a pending device: its token never works."""
        return carried(enrollment.reject_enrollment(uuid, actor()))
