"""A device trades an enrollment token for its identity: ``POST /devices/enroll``; and asks for
its MQTT credentials again: ``POST /devices/<uuid>/mqtt-credentials``.

Enrollment is the one resource route answered without a bearer token (``api.auth``): the
enrollment token in the body is the credential, and every refusal (401) counts as a failed
authentication of the caller's address, so guessing tokens is rate limited as guessing logins
is.
"""

from __future__ import annotations

import uuid as uuid_mod

from flask.views import MethodView

from api.auth import bearer_token, device_access
from api.effects import carried, settings
from api.errors import abort
from api.headers import NO_STORE
from api.json_body import ResourceBlueprint
from dispatcher.fleet import broker_identities, enrollment
from dispatcher.fleet.tokens import hash_token
from schemas.enrollment import EnrollAnswer, EnrollRequest, MqttCredentials

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

        The same hardware_id enrolling again gets its device back with a new token (and new
        MQTT credentials). A token that is unknown, revoked, expired or used up is refused
        (401) with the reason. A broker that cannot be told the device's MQTT identity does
        not fail the enrollment: the answer's ``mqtt.ready`` is false, with the reason."""
        status, device, token = carried(enrollment.enroll_device(
            body["enrollment_token"], body["hardware_id"], body["device_name"]))
        answer = {**device, "status": status, "device_token": token}
        if broker_identities.issues_credentials(settings()):
            answer["mqtt"] = broker_identities.for_enrollment(
                settings(), device["uuid"], hash_token(token),
                accepted=status == enrollment.ACCEPTED)._asdict()
        code = 201 if status == enrollment.ACCEPTED else 202
        return answer, code, NO_STORE


@blp.route("/devices/<uuid:uuid>/mqtt-credentials")
class DeviceMqttCredentials(MethodView):
    @blp.view(device_access, MqttCredentials)
    def post(self, uuid: uuid_mod.UUID):
        """Give the broker this device's MQTT identity again and answer its credentials: for a
        device whose broker was down when it enrolled or was accepted (503 while it still is;
        404 when this server issues no MQTT credentials)."""
        broker_identities.require_issuing(settings())
        token = bearer_token()
        if token is None:
            abort(401, message="Missing bearer token")
        return broker_identities.grant(settings(), uuid, hash_token(token))._asdict(), NO_STORE
