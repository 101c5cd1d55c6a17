"""``dispatcher enrollment-tokens …`` and ``dispatcher devices pending|accept|reject``:
devices that enroll themselves, and the operator who lets them in."""

from __future__ import annotations

import argparse

from client.api import DeviceJobsClient
from client.command import Actions, command_group, list_command, uuid_text, with_client
from client.output import column, print_record
from schemas.command_line import key_value

# The API's largest page: an operator deciding enrollments one by one never has more waiting.
LIST_LIMIT = 500
TOKEN_COLUMNS = [
    column("ID", "id"), column("NAME", "name"), column("TYPE", "device_type"),
    column("USES", "uses"), column("MAX", "max_uses"), column("EXPIRES", "expires_at"),
    column("ACCEPT", "requires_acceptance"), column("REVOKED", "revoked_at"),
]
PENDING_COLUMNS = [
    column("UUID", "uuid"), column("NAME", "device_name"), column("TYPE", "device_type"),
    column("REQUESTED", "requested_at"), column("TOKEN", "enrollment_token_name"),
]


cmd_tokens_list = list_command("enrollment_tokens", TOKEN_COLUMNS, lambda client, args: (
    client.request("GET", "/enrollment-tokens", query={"limit": LIST_LIMIT})))


@with_client
def cmd_tokens_create(args: argparse.Namespace, client: DeviceJobsClient) -> int:
    made = client.request("POST", "/enrollment-tokens", {
        "name": args.name, "expires_at": args.expires_at, "max_uses": args.max_uses,
        "device_type": args.type, "attributes": dict(args.attr),
        "requires_acceptance": args.requires_acceptance})
    print_record(made, args.output)
    if args.output != "json":
        print("\nshown only this once; on a device: jobs-agent enroll --server "
              f"{client.url} --enrollment-token {made['enrollment_token']}")
    return 0


@with_client
def cmd_tokens_revoke(args: argparse.Namespace, client: DeviceJobsClient) -> int:
    print_record(client.request("POST", f"/enrollment-tokens/{args.id}/revoke"), args.output)
    return 0


cmd_pending = list_command("pending_enrollments", PENDING_COLUMNS, lambda client, args: (
    client.request("GET", "/devices/pending", query={"limit": LIST_LIMIT})))


@with_client
def cmd_accept(args: argparse.Namespace, client: DeviceJobsClient) -> int:
    device = client.request("POST", f"/devices/pending/{args.uuid}/accept")
    print(f"accepted {device['device_name']} ({device['uuid']}): it gets jobs from its next poll")
    return 0


@with_client
def cmd_reject(args: argparse.Namespace, client: DeviceJobsClient) -> int:
    pending = client.request("POST", f"/devices/pending/{args.uuid}/reject")
    print(f"rejected {pending['device_name']} ({pending['uuid']})")
    return 0


def add_device_commands(d_sub: Actions, connection: argparse.ArgumentParser,
                        read: argparse.ArgumentParser) -> None:
    """``devices pending|accept|reject``."""
    d_sub.add("pending", read, cmd_pending, help="devices that enrolled and wait for acceptance")
    for name, run, what in (("accept", cmd_accept, "let a pending device in: it gets jobs"),
                            ("reject", cmd_reject, "refuse a pending device: its token never "
                             "works")):
        p = d_sub.add_parser(name, parents=[connection], help=what)
        p.add_argument("uuid", type=uuid_text)
        p.set_defaults(func=run)


def add_commands(sub: argparse._SubParsersAction, connection: argparse.ArgumentParser,
                 read: argparse.ArgumentParser) -> None:
    """``enrollment-tokens list|create|revoke``."""
    t_sub = command_group(sub, "enrollment-tokens", "tokens_command",
                          help="tokens devices enroll with (jobs-agent enroll)")
    t_sub.add("list", read, cmd_tokens_list, help="enrollment tokens, newest first")
    p = t_sub.add("create", read, cmd_tokens_create, help="make one; it is shown only once")
    p.add_argument("--name", required=True)
    p.add_argument("--expires-at", help="ISO 8601 with a UTC offset (default: never)")
    p.add_argument("--max-uses", type=int, help="enrollments it buys (default: any number)")
    p.add_argument("--type", default="generic", help="device type of its devices")
    p.add_argument("--attr", type=key_value, action="append", default=[], metavar="KEY=VALUE",
                   help="an attribute of its devices (repeatable)")
    p.add_argument("--requires-acceptance", action="store_true",
                   help="its devices wait for `dispatcher devices accept`")
    p = t_sub.add("revoke", read, cmd_tokens_revoke, help="no device enrolls with it any more")
    p.add_argument("id", type=int)
