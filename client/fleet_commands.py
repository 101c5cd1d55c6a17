"""``dispatcher devices search`` and ``dispatcher groups …``: the fleet by what it is.

A filter is given as JSON text (``'{"site": "berlin"}'``) or a file holding it (``-`` for
standard input); the language is described in the README.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from client import groups_api
from client.api import DeviceJobsClient
from client.command import (
    Actions,
    UsageError,
    command_group,
    list_command,
    read_json_file,
    show_command,
    uuid_text,
    with_client,
)
from client.output import column, print_answer, print_rows

DEVICE_COLUMNS = [
    column("UUID", "uuid"), column("NAME", "device_name"), column("TYPE", "device_type"),
    column("LAST_SEEN", "last_seen_at"), column("ATTRIBUTES", "attributes"),
]
SEARCH_COLUMNS = [*DEVICE_COLUMNS, column("INVENTORY", "inventory")]
GROUP_COLUMNS = [
    column("NAME", "name"), column("KIND", "kind"), column("MEMBERS", "member_count"),
    column("FILTER", "filter"),
    column("UPDATED", "updated_at"), column("DESCRIPTION", "description"),
]


def filter_argument(text: str) -> dict[str, Any]:
    """A filter from JSON text or a JSON file (``-``: standard input)."""
    if text.lstrip().startswith("{"):
        try:
            value = json.loads(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(f"not valid JSON: {exc}") from None
    else:
        try:
            value = read_json_file(text)
        except UsageError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError("a filter is a JSON object")
    return value


@with_client
def cmd_devices_search(args: argparse.Namespace, client: DeviceJobsClient) -> int:
    if args.count:
        found = groups_api.search_devices(client, args.filter, limit=1)
        print(found["total"] if args.output != "json" else json.dumps({"total": found["total"]}))
        return 0
    rows = list(groups_api.iter_search(client, args.filter))
    print_rows(rows, SEARCH_COLUMNS, args.output)
    return 0


cmd_groups_list = list_command("groups", GROUP_COLUMNS, lambda client, args: groups_api.list_groups(
    client, args.limit, args.offset))


cmd_groups_show = show_command(lambda client, args: groups_api.get_group(client, args.name))


@with_client
def cmd_groups_create(args: argparse.Namespace, client: DeviceJobsClient) -> int:
    group: dict[str, Any] = {"name": args.name, "description": args.description or ""}
    if args.filter is not None:
        group["filter"] = args.filter
    else:
        group["devices"] = args.device
    created = groups_api.create_group(client, group)
    print_answer(created, args.output, f"group {created['name']} created ({created['kind']}, "
                                       f"{created['member_count']} devices now)")
    return 0


@with_client
def cmd_groups_delete(args: argparse.Namespace, client: DeviceJobsClient) -> int:
    groups_api.delete_group(client, args.name)
    print(f"group {args.name} deleted")
    return 0


def add_device_search(d_sub: Actions, read: argparse.ArgumentParser) -> None:
    p = d_sub.add("search", read, cmd_devices_search, help="devices matching a filter")
    p.add_argument("--filter", type=filter_argument, required=True, metavar="JSON|FILE",
                   help='e.g. \'{"inventory.os.id": "debian", "site": {"$prefix": "muc-"}}\'')
    p.add_argument("--count", action="store_true", help="print only how many match")


def add_commands(sub: argparse._SubParsersAction, connection: argparse.ArgumentParser,
                 read: argparse.ArgumentParser) -> None:
    g_sub = command_group(sub, "groups", "groups_command",
                          help="named groups of devices (via the API)")
    p = g_sub.add("list", read, cmd_groups_list, help="groups by name")
    p.add_argument("--limit", type=int, default=50)
    p.add_argument("--offset", type=int, default=0)
    p = g_sub.add("show", read, cmd_groups_show, help="a group with its member count")
    p.add_argument("name")
    p = g_sub.add_parser("create", parents=[read],
                         help="a dynamic group (--filter) or a static one (--device)")
    p.add_argument("name")
    p.add_argument("--description")
    members = p.add_mutually_exclusive_group(required=True)
    members.add_argument("--filter", type=filter_argument, metavar="JSON|FILE",
                         help="members follow this filter")
    members.add_argument("--device", nargs="+", type=uuid_text, metavar="UUID",
                         help="exactly these devices")
    p.set_defaults(func=cmd_groups_create)
    p = g_sub.add("delete", connection, cmd_groups_delete,
                  help="delete a group (refused while a job targets it)")
    p.add_argument("name")
