"""A device trades an enrollment token for its identity: ``POST /devices/enroll``.

The one resource route answered without a bearer token (``api.auth``): the enrollment token in
the body is the credential, and every refusal (401) counts as a failed authentication of the
caller's address, so guessing tokens is rate limited as guessing logins is.
"""

from __future__ import annotations

from flask.views import MethodView

from api.effects import carried
from api.headers import NO_STORE
from api.json_body import ResourceBlueprint
from dispatcher.fleet import enrollment
from schemas.enrollment import EnrollAnswer, EnrollRequest

blp = ResourceBlueprint("device-enroll", __name__,
                        description="A device enrolls with an enrollment token")


@blp.route("/devices/enroll")
class DeviceEnrollment(MethodView):
    @blp.arguments(EnrollRequest)
    @blp.response(201, EnrollAnswer)
    @blp.alt_response(202, schema=EnrollAnswer,
                      description="Pending: the device waits until an operator accepts it.")
    def post(self, body: dict):
        """Enroll this device: 201 with its identity, or 202 while an operator must accept it.

        The same hardware_id enrolling again gets its device back with a new token. A token
        that is unknown, revoked, expired or used up is refused (401) with the reason."""
        status, device, token = carried(enrollment.enroll_device(
            body["enrollment_token"], body["hardware_id"], body["device_name"]))
        code = 201 if status == enrollment.ACCEPTED else 202
        return {**device, "status": status, "device_token": token}, code, NO_STORE
