"""``dispatcher templates|handlers|devices …``: what jobs are made of, and where they run.

``apply`` creates or updates by name, so templates and handlers kept in git can be applied by
a pipeline on every push: applying an unchanged file changes nothing.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from client import enrollment_commands, fleet_commands
from client.api import DeviceJobsClient
from client.command import (
    UsageError,
    command_group,
    print_applied,
    read_file,
    read_json_file,
    rows_command,
    show_command,
    uuid_text,
    with_client,
)
from client.output import column, print_json, print_record, print_rows
from schemas.command_line import key_value

TEMPLATE_COLUMNS = [
    column("ID", "id"), column("NAME", "name"), column("CATEGORY", "category"),
    column("ACTIVE", "is_active"), column("TYPE", "execution_type"),
    column("UPDATED", "updated_at"), column("DESCRIPTION", "description"),
]
HANDLER_COLUMNS = [
    column("NAME", "name"), column("TYPE", "script_type"), column("MODE", "permissions"),
    column("SHA256", "script_sha256"), column("UPDATED", "updated_at"),
    column("DESCRIPTION", "description"),
]
DEVICE_JOB_COLUMNS = [
    column("JOB_ID", "job_id"), column("NAME", "job_name"), column("STATUS", "status"),
    column("EXEC", "execution_number"), column("EXIT", "exit_code"),
    column("UPDATED", "last_updated_at"),
]


def find_template(client: DeviceJobsClient, name_or_id: str) -> dict:
    if name_or_id.isdigit():
        return client.get_template(int(name_or_id))
    template = client.find_template(name_or_id)
    if template is None:
        raise UsageError(f"no template named {name_or_id!r}")
    return template


cmd_templates_list = rows_command(TEMPLATE_COLUMNS, lambda client, args: client.iter_templates(
    args.category, {"yes": True, "no": False}.get(args.active or "")))


cmd_templates_show = show_command(lambda client, args: find_template(client, args.template))


@with_client
def cmd_templates_apply(args: argparse.Namespace, client: DeviceJobsClient) -> int:
    template = read_json_file(args.file)
    if not isinstance(template, dict) or not isinstance(template.get("name"), str):
        raise UsageError(f"{args.file}: a template is a JSON object with a \"name\"")
    outcome, stored = client.apply_template(template)
    return print_applied(args, "template", outcome, stored,
                         f"template {stored['name']} (id {stored['id']}) {outcome}")


@with_client
def cmd_templates_delete(args: argparse.Namespace, client: DeviceJobsClient) -> int:
    template = find_template(client, args.template)
    client.delete_template(int(template["id"]))
    print(f"template {template['name']} (id {template['id']}) deleted")
    return 0


cmd_handlers_list = rows_command(HANDLER_COLUMNS, lambda client, args: client.iter_handlers())


cmd_handlers_show = show_command(lambda client, args: client.get_handler(args.name))


@with_client
def cmd_handlers_apply(args: argparse.Namespace, client: DeviceJobsClient) -> int:
    handler: dict = {"name": args.name or Path(args.file).name, "script_type": args.type,
                     "script_content": read_file(args.file)}
    if args.description is not None:
        handler["description"] = args.description
    if args.permissions is not None:
        handler["permissions"] = args.permissions
    if args.arg is not None:
        handler["default_args"] = args.arg
    outcome, stored = client.apply_handler(handler)
    return print_applied(args, "handler", outcome, stored,
                         f"handler {stored['name']} {outcome} (sha256 {stored['script_sha256']})")


@with_client
def cmd_handlers_delete(args: argparse.Namespace, client: DeviceJobsClient) -> int:
    client.delete_handler(args.name)
    print(f"handler {args.name} deleted")
    return 0


cmd_devices_list = rows_command(fleet_commands.DEVICE_COLUMNS, lambda client, args: (
    client.iter_devices(args.type, dict(args.attr) or None)))


@with_client
def cmd_devices_show(args: argparse.Namespace, client: DeviceJobsClient) -> int:
    device = client.get_device(args.uuid)
    jobs = client.device_jobs(args.uuid, limit=args.jobs)
    if args.output == "json":
        print_json({**device, "jobs": jobs["jobs"]})
        return 0
    print_record(device, "table")
    print(f"\nlatest jobs ({len(jobs['jobs'])} of {jobs['total']}):")
    print_rows(jobs["jobs"], DEVICE_JOB_COLUMNS, "table")
    return 0


def _add_templates(sub: argparse._SubParsersAction, connection: argparse.ArgumentParser,
                   read: argparse.ArgumentParser) -> None:
    t_sub = command_group(sub, "templates", "templates_command", help="job templates (via the API)")
    p = t_sub.add("list", read, cmd_templates_list, help="every template")
    p.add_argument("--category")
    p.add_argument("--active", choices=("yes", "no"))
    p = t_sub.add("show", read, cmd_templates_show, help="one template, by name or id")
    p.add_argument("template", metavar="NAME|ID")
    p = t_sub.add("apply", read, cmd_templates_apply,
                  help="create or update a template by name from a JSON file")
    p.add_argument("-f", "--file", required=True, help="the template as JSON (- for stdin)")
    p = t_sub.add("delete", connection, cmd_templates_delete, help="delete a template")
    p.add_argument("template", metavar="NAME|ID")


def _add_handlers(sub: argparse._SubParsersAction, connection: argparse.ArgumentParser,
                  read: argparse.ArgumentParser) -> None:
    h_sub = command_group(sub, "handlers", "handlers_command",
                          help="job handler scripts (via the API)")
    h_sub.add("list", read, cmd_handlers_list, help="every handler (without scripts)")
    p = h_sub.add("show", read, cmd_handlers_show, help="one handler with its script")
    p.add_argument("name")
    p = h_sub.add("apply", read, cmd_handlers_apply,
                  help="create or update a handler by name from a script file")
    p.add_argument("-f", "--file", required=True, help="the script")
    p.add_argument("--name", help="handler name (default: the file's name)")
    p.add_argument("--type", required=True, choices=("bash", "python", "node"))
    p.add_argument("--description")
    p.add_argument("--permissions", help='octal file mode on the device, e.g. "700"')
    p.add_argument("--arg", action="append", help="a default argument (repeatable)")
    p = h_sub.add("delete", connection, cmd_handlers_delete, help="delete a handler")
    p.add_argument("name")


def add_commands(sub: argparse._SubParsersAction, connection: argparse.ArgumentParser,
                 read: argparse.ArgumentParser) -> None:
    _add_templates(sub, connection, read)
    _add_handlers(sub, connection, read)
    d_sub = command_group(sub, "devices", "devices_command",
                          help="registered devices (via the API)")
    p = d_sub.add("list", read, cmd_devices_list, help="devices, optionally of a group")
    p.add_argument("--type", help="only this device type")
    p.add_argument("--attr", type=key_value, action="append", default=[], metavar="KEY=VALUE",
                   help="only devices with this attribute (repeatable)")
    p = d_sub.add("show", read, cmd_devices_show, help="a device and its latest jobs")
    p.add_argument("uuid", type=uuid_text)
    p.add_argument("--jobs", type=int, default=10, help="latest jobs shown (default 10)")
    enrollment_commands.add_device_commands(d_sub, connection, read)
    fleet_commands.add_device_search(d_sub, read)
