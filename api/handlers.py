"""Job handlers (admin), and the device's own fetch of a handler script."""

from __future__ import annotations

import uuid as uuid_mod

from flask.views import MethodView

from api.auth import actor, device_access, read_access, write_access
from api.json_body import ResourceBlueprint, with_changed
from dispatcher.catalog import handlers
from schemas.handlers import (
    DeviceHandler,
    HandlerCreate,
    HandlerList,
    HandlerSchema,
    HandlerUpdate,
    HandlerUpdated,
)

blp = ResourceBlueprint("handlers", __name__, description="Scripts that runHandler steps run")


@blp.route("/jobs/handlers")
class Handlers(MethodView):
    get = blp.page(read_access, HandlerList, handlers.list_handlers,
                   "Handlers by name, without their scripts (GET one handler for its script).")

    @blp.view(write_access, HandlerSchema, 201, body=HandlerCreate)
    def post(self, body: dict):
        """Create a handler; the answer carries the script's sha256."""
        return handlers.create_handler(body, actor())


@blp.route("/jobs/handlers/<name>")
class Handler(MethodView):
    get = blp.one(read_access, HandlerSchema, handlers.get_handler)

    @blp.view(write_access, HandlerUpdated, body=HandlerUpdate)
    def put(self, body: dict, name: str):
        """Change any subset of the fields; answers the handler and what changed."""
        return with_changed(handlers.update_handler(name, body, actor()))

    @blp.view(write_access, HandlerSchema)
    def delete(self, name: str):
        """Delete a handler; answers it as it was."""
        return handlers.delete_handler(name, actor())


@blp.route("/devices/<uuid:uuid>/handlers/<name>")
class DeviceHandlerFetch(MethodView):
    @blp.view(device_access, DeviceHandler)
    def get(self, uuid: uuid_mod.UUID, name: str):
        """A handler's script and sha256, for the device whose token this is, when one of its
        pending or recent executions runs it (404 otherwise)."""
        return handlers.get_device_handler(uuid, name)
