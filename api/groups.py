"""Named groups of devices (dynamic: a filter; static: a list), and device search."""

from __future__ import annotations

from flask.views import MethodView

from api.auth import actor, read_access, write_access
from api.effects import carried
from api.json_body import ResourceBlueprint
from dispatcher.fleet import devices, groups
from schemas.devices import DeviceList
from schemas.groups import DeviceSearch, GroupCreate, GroupDetail, GroupList, GroupPatch

blp = ResourceBlueprint("groups", __name__, description="Named groups of devices, and search")


@blp.route("/groups")
class Groups(MethodView):
    get = blp.page(read_access, GroupList, groups.list_groups, "Groups by name.")

    @blp.view(write_access, GroupDetail, 201, body=GroupCreate)
    def post(self, body: dict):
        """Create a dynamic group (``filter``) or a static one (``devices``)."""
        return carried(groups.create_group(body, actor()))


@blp.route("/groups/<string:name>")
class Group(MethodView):
    get = blp.one(read_access, GroupDetail, groups.get_group,
                  "A group with its member count now (and a static group's devices).")

    @blp.view(write_access, GroupDetail, body=GroupPatch)
    def patch(self, body: dict, name: str):
        """Change the description, a dynamic group's filter or a static group's devices."""
        return carried(groups.update_group(name, body, actor()))

    @write_access
    @blp.response(204)
    @blp.alt_response(409, description="An unfinished job targets the group")
    def delete(self, name: str):
        """Delete a group, unless an unfinished job targets it (409)."""
        groups.delete_group(name, actor())


@blp.route("/devices/search", methods=["POST"])
@read_access
@blp.arguments(DeviceSearch)
@blp.response(200, DeviceList)
def search_devices(body: dict):
    """A page of the devices a filter matches, with their number (the execute preview counts
    the same). A filter no index serves is stopped after a few seconds, saying so."""
    return devices.list_devices(body["filter"], body["limit"], body["offset"])
