"""Devices: registration, listing by group filter, edits and token rotation (admin)."""

from __future__ import annotations

import uuid as uuid_mod

from flask.views import MethodView

from api.auth import actor, read_access, write_access
from api.effects import carried
from api.headers import NO_STORE
from api.json_body import ResourceBlueprint, with_changed
from dispatcher.fleet import devices
from schemas.devices import (
    DeviceCreate,
    DeviceCreated,
    DeviceDeleted,
    DeviceList,
    DeviceListQuery,
    DevicePatch,
    DeviceSchema,
    DeviceToken,
    DeviceUpdated,
)

blp = ResourceBlueprint("devices", __name__, description="Devices of the fleet and their tokens")


@blp.route("/devices")
class Devices(MethodView):
    @blp.view(read_access, DeviceList, query=DeviceListQuery)
    def get(self, query: dict):
        """Devices matching a type and an attribute filter, by uuid."""
        return devices.list_devices(query["target_filter"], query["limit"], query["offset"])

    @blp.view(write_access, DeviceCreated, 201, body=DeviceCreate)
    def post(self, body: dict):
        """Register a device; the answer carries its token, shown only this once."""
        device, token = carried(devices.register_device(
            body["device_name"], body["device_type"], body["attributes"],
            device_uuid=body.get("uuid"), actor=actor(),
        ))
        return {**device, "device_token": token}, NO_STORE


@blp.route("/devices/<uuid:uuid>")
class Device(MethodView):
    get = blp.one(read_access, DeviceSchema, devices.get_device)

    @blp.view(write_access, DeviceUpdated, body=DevicePatch)
    def patch(self, body: dict, uuid: uuid_mod.UUID):
        """Change name, type or attributes (merged; null removes one); answers what changed."""
        return with_changed(carried(devices.update_device(uuid, body, actor())))

    @blp.view(write_access, DeviceDeleted)
    def delete(self, uuid: uuid_mod.UUID):
        """Delete a device and its job history; answers the device as it was."""
        device, removed = carried(devices.delete_device(uuid, actor()))
        return {**device, "removed_job_statuses": removed}


@blp.route("/devices/<uuid:uuid>/token")
class DeviceTokenRotation(MethodView):
    @blp.view(write_access, DeviceToken)
    def post(self, uuid: uuid_mod.UUID):
        """Issue a new device token; the old one stops working at once."""
        token = carried(devices.rotate_device_token(uuid, actor()))
        return {"uuid": uuid, "device_token": token}, NO_STORE
