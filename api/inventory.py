"""Device inventory: a device reports its own facts (its token only)."""

from __future__ import annotations

import functools
import uuid as uuid_mod
from collections.abc import Callable
from datetime import UTC, datetime

from flask import request
from flask.views import MethodView

from api.auth import device_access
from api.effects import carried
from api.errors import abort
from api.json_body import ResourceBlueprint
from dispatcher.fleet import inventory
from schemas.inventory import MAX_INVENTORY_BODY_BYTES, InventoryReport, InventoryStored

blp = ResourceBlueprint("inventory", __name__, description="What devices report about themselves")


def body_at_most(limit_bytes: int) -> Callable[[Callable], Callable]:
    """413 for a body over ``limit_bytes``, before it is parsed."""

    def decorator(view: Callable) -> Callable:
        @functools.wraps(view)
        def wrapper(*args, **kwargs):
            size = request.content_length
            if size is None:
                size = len(request.get_data(cache=True))
            if size > limit_bytes:
                abort(413, message=f"An inventory report is at most {limit_bytes} bytes; this "
                                   f"one is {size}.")
            return view(*args, **kwargs)

        return wrapper

    return decorator


@blp.route("/devices/<uuid:uuid>/inventory")
class DeviceInventory(MethodView):
    @device_access
    @body_at_most(MAX_INVENTORY_BODY_BYTES)
    @blp.arguments(InventoryReport)
    @blp.response(200, InventoryStored)
    @blp.alt_response(413, description="The body is over 32 KiB")
    def put(self, report: dict, uuid: uuid_mod.UUID):
        """Report this device's facts (its own token only): replace the inventory, or merge
        into it (a null removes a key). Sent when they change; counts as a sighting."""
        return carried(inventory.report_inventory(uuid, report["data"], report["mode"],
                                                  datetime.now(UTC)))
