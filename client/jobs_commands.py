"""``dispatcher jobs …``: execute a job, follow it, cancel or retry it, read its results."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from client import fleet_commands, rollout_commands
from client.api import DeviceJobsClient, Target, execute_body
from client.artifacts import delivery_document
from client.command import (
    Command,
    UsageError,
    command_group,
    list_command,
    read_json_file,
    uuid_text,
    with_client,
)
from client.output import column, print_answer, print_json, print_record, print_rows
from client.watch import watch_jobs
from schemas.command_line import key_value
from schemas.vocabulary import (
    CONTINUOUS,
    DEVICE_STATUSES,
    JOB_STATUSES,
    RECURRING,
)

JOB_COLUMNS = [
    column("JOB_ID", "job_id"), column("NAME", "job_name"), column("STATUS", "status"),
    column("TYPE", "execution_type"), column("TARGET", "target_type"),
    ("OK/FAIL/TOTAL", lambda j: f"{j.get('succeeded_devices', 0)}/{j.get('failed_devices', 0)}"
                                f"/{j.get('total_devices', 0)}"),
    column("QUEUED_AT", "queued_at"),
]
DEVICE_COLUMNS = [
    column("DEVICE", "device_uuid"), column("NAME", "device_name"), column("STATUS", "status"),
    column("EXEC", "execution_number"), column("EXIT", "exit_code"),
    column("REASON", "reason"), column("UPDATED", "last_updated_at"),
]
EVENT_COLUMNS = [
    column("ID", "id"), column("AT", "occurred_at"), column("ACTOR", "actor"),
    column("ACTION", "action"), column("DEVICE", "device_uuid"), column("DETAILS", "details"),
]
RUN_COLUMNS = [
    column("JOB_ID", "job_id"), column("STATUS", "status"), column("SLOT", "scheduled_for"),
    column("DEVICES", "total_devices"), column("COMPLETED", "completed_at"),
]
JOB_FIELDS = (
    "job_id", "job_name", "status", "execution_type", "template_id", "target_type",
    "target_devices", "target_filter", "total_devices", "succeeded_devices", "failed_devices",
    "in_progress_devices", "queued_devices", "canceled_devices", "removed_devices",
    "fanout_status", "reason", "queued_at", "started_at", "completed_at", "next_run_at",
    "run_count", "created_by", "rollout_config", "abort_config", "timeout_config",
    "retry_config", "scheduling_config", "schedule",
)


def template_id(client: DeviceJobsClient, name_or_id: str) -> int:
    if name_or_id.isdigit():
        return int(name_or_id)
    template = client.find_template(name_or_id)
    if template is None:
        raise UsageError(f"no template named {name_or_id!r}")
    return int(template["id"])


def target(args: argparse.Namespace) -> Target:
    if args.device:
        return Target.devices(args.device)
    if args.group:
        return Target.group(dict(args.group))
    if args.filter is not None:
        return Target.group(args.filter)
    if args.group_name:
        return Target.named_group(args.group_name)
    return Target.all()


def policies(args: argparse.Namespace) -> dict[str, Any]:
    """The policy fields: those of --policies FILE, each option replacing its field."""
    values: dict[str, Any] = read_json_file(args.policies) if args.policies else {}
    if not isinstance(values, dict):
        raise UsageError(f"{args.policies}: the policies are a JSON object")
    if args.rollout_rate is not None:
        values["rollout_config"] = {"maximum_per_minute": args.rollout_rate}
    if args.timeout_minutes is not None:
        values["timeout_config"] = {"in_progress_timeout_minutes": args.timeout_minutes}
    if args.retries is not None:
        values["retry_config"] = {"criteria_list": [
            {"failure_type": "ALL", "number_of_retries": args.retries}]}
    if args.start_time or args.end_time:
        scheduling = dict(values.get("scheduling_config") or {})
        scheduling.update({k: v for k, v in (("start_time", args.start_time),
                                             ("end_time", args.end_time)) if v})
        values["scheduling_config"] = scheduling
    if args.cron:
        values["execution_type"] = RECURRING
        values["schedule"] = {"cron": args.cron, "timezone": args.timezone}
    if args.continuous:
        values["execution_type"] = CONTINUOUS
    values.update(rollout_commands.stage_fields(args))
    return values


@with_client
def cmd_execute(args: argparse.Namespace, client: DeviceJobsClient) -> int:
    body = execute_body(
        target(args),
        template_id=template_id(client, args.template) if args.template else None,
        job_document=(read_json_file(args.document) if args.document
                      else delivery_document(client, args.artifact) if args.artifact else None),
        job_name=args.name or ("deliver artifacts" if args.artifact else None),
        parameters=dict(args.param), policies=policies(args),
    )
    if args.dry_run:
        preview = client.preview(body)
        if args.output == "json":
            print_json(preview)
            return 0
        print(f"dry run: {preview['total_devices']} device(s) match; the job would start "
              f"{preview['status']}; nothing was created")
        print(json.dumps(preview["job_document"], indent=2))
        return 0
    answer = client.execute(body)
    job = answer["job"]
    print_answer(answer, args.output,
                 f"{answer['message']}: job {job['job_id']} ({job['job_name']})")
    if not args.watch:
        return 0
    if body.get("stages") or body.get("requires_approval"):
        return rollout_commands.watch_rollout(
            client, str(job["job_id"]), interval_s=args.interval, timeout_s=args.timeout,
            out=sys.stderr if args.output == "json" else sys.stdout)
    return watch_jobs(client, [str(job["job_id"])], interval_s=args.interval,
                      timeout_s=args.timeout,
                      out=sys.stderr if args.output == "json" else sys.stdout)


cmd_list = list_command("executions", JOB_COLUMNS, lambda client, args: client.list_executions(
    args.status, args.limit, args.offset))
cmd_events = list_command("events", EVENT_COLUMNS, lambda client, args: client.job_events(
    args.job_id, args.limit, args.offset))
cmd_runs = list_command("runs", RUN_COLUMNS, lambda client, args: client.job_runs(
    args.job_id, args.limit, args.offset))


@with_client
def cmd_show(args: argparse.Namespace, client: DeviceJobsClient) -> int:
    detail = client.get_execution(args.job_id)
    page = client.execution_devices(args.job_id, args.status, args.limit, args.offset)
    if args.output == "json":
        print_json({**detail, "device_statuses": page["device_statuses"],
                    "device_statuses_total": page["total"]})
        return 0
    print_record(detail["job"], "table", JOB_FIELDS)
    print(f"\ndevices {page['offset'] + 1 if page['total'] else 0}-"
          f"{page['offset'] + len(page['device_statuses'])} of {page['total']}:")
    print_rows(page["device_statuses"], DEVICE_COLUMNS, "table")
    return 0


@with_client
def cmd_watch(args: argparse.Namespace, client: DeviceJobsClient) -> int:
    return watch_jobs(client, args.job_id, interval_s=args.interval, timeout_s=args.timeout)


@with_client
def cmd_cancel(args: argparse.Namespace, client: DeviceJobsClient) -> int:
    if args.device:
        row = client.cancel_device(args.job_id, args.device, args.force, args.reason)
        print(f"device {row['device_uuid']}: {row['status']}")
        return 0
    answer = client.cancel(args.job_id, args.force, args.reason)
    print(answer.get("message") or f"job {args.job_id}: {answer['job']['status']}")
    return 0


@with_client
def cmd_retry(args: argparse.Namespace, client: DeviceJobsClient) -> int:
    if args.device:
        row = client.retry_device(args.job_id, args.device)
        print(f"device {row['device_uuid']}: {row['status']} (execution "
              f"{row['execution_number']})")
    else:
        answer = client.retry(args.job_id)
        print(answer.get("message") or f"job {args.job_id}: {answer['job']['status']}")
    if args.watch:
        return watch_jobs(client, [args.job_id], interval_s=args.interval, timeout_s=args.timeout)
    return 0


@with_client
def cmd_output(args: argparse.Namespace, client: DeviceJobsClient) -> int:
    """The device's latest execution of the job: its stdout on stdout, its stderr on stderr."""
    row = next((r for r in client.iter_device_jobs(args.device)
                if str(r["job_id"]) == args.job_id), None)
    if row is None:
        raise UsageError(f"device {args.device} has no execution of job {args.job_id}")
    if args.output == "json":
        print_json(row)
        return 0
    sys.stdout.write(row.get("stdout") or "")
    sys.stderr.write(row.get("stderr") or "")
    print(f"# {row['status']} exit_code={row.get('exit_code')} execution "
          f"{row['execution_number']}", file=sys.stderr)
    return 0


def _watch_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--timeout", type=float, metavar="SECONDS",
                   help="stop watching after this long (exit 5; the job goes on)")
    p.add_argument("--interval", type=float, default=2.0, metavar="SECONDS",
                   help="seconds between polls (default %(default)s)")


def _paging(p: argparse.ArgumentParser) -> None:
    p.add_argument("--limit", type=int, default=50, help="rows per page (default %(default)s)")
    p.add_argument("--offset", type=int, default=0)


def _add_execute(jobs: argparse._SubParsersAction, read: argparse.ArgumentParser) -> None:
    p = jobs.add_parser("execute", parents=[read], help="execute a template or a job document")
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--template", metavar="NAME|ID", help="a template, by name or id")
    source.add_argument("--document", metavar="FILE", help="a job document (JSON file, - stdin)")
    source.add_argument("--artifact", action="append", metavar="FILE_OR_NAME=DESTINATION",
                        help="deliver a file (uploaded first when it is a local file) or an "
                             "artifact to DESTINATION on the devices (repeatable)")
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("--device", nargs="+", type=uuid_text, metavar="UUID",
                       help="these devices")
    where.add_argument("--group", nargs="+", type=key_value, metavar="KEY=VALUE",
                       help="devices matching all of these (device_type=…, attributes)")
    where.add_argument("--filter", type=fleet_commands.filter_argument, metavar="JSON|FILE",
                       help="devices matching a filter (the filter language)")
    where.add_argument("--group-name", metavar="NAME", help="the devices of a named group")
    where.add_argument("--all", action="store_true", help="every device")
    p.add_argument("--name", help="job name (default: the template's; needed with --document)")
    p.add_argument("--param", type=key_value, action="append", default=[], metavar="KEY=VALUE",
                   help="a {{KEY}} placeholder's value (repeatable)")
    p.add_argument("--policies", metavar="FILE", help="policy fields as JSON (rollout_config, "
                   "abort_config, timeout_config, retry_config, scheduling_config, schedule, "
                   "execution_type); the options below replace their field")
    p.add_argument("--rollout-rate", type=int, metavar="N", help="devices released per minute")
    p.add_argument("--timeout-minutes", type=int, metavar="N",
                   help="a device running longer than this is TIMED_OUT")
    p.add_argument("--retries", type=int, metavar="N", help="retries of a failed device")
    p.add_argument("--start-time", metavar="ISO8601", help="start later (the job is SCHEDULED)")
    p.add_argument("--end-time", metavar="ISO8601", help="stop the rollout at this time")
    p.add_argument("--cron", metavar="EXPR", help="a recurring job on this cron schedule")
    p.add_argument("--timezone", default="UTC", help="the cron's time zone (default UTC)")
    p.add_argument("--continuous", action="store_true",
                   help="also run on devices that join the group later")
    p.add_argument("--dry-run", action="store_true",
                   help="show how many devices match and the rendered document; create nothing")
    p.add_argument("--watch", action="store_true",
                   help="follow the job; exit 0 only if it SUCCEEDED (3 FAILED, 4 CANCELED, "
                        "5 watch timeout, 10 a staged rollout paused)")
    _watch_options(p)
    rollout_commands.add_stage_options(p)
    p.set_defaults(func=cmd_execute)


def _job_action(actions: argparse._SubParsersAction, name: str,
                parent: argparse.ArgumentParser, help_text: str,
                command: Command) -> argparse.ArgumentParser:
    """``dispatcher jobs NAME JOB_ID …``: an action on one job; its other options are added
    to the parser this answers."""
    p = actions.add_parser(name, parents=[parent], help=help_text)
    p.add_argument("job_id", type=uuid_text)
    p.set_defaults(func=command)
    return p


def add_commands(sub: argparse._SubParsersAction, connection: argparse.ArgumentParser,
                 read: argparse.ArgumentParser) -> None:
    jobs_sub = command_group(sub, "jobs", "jobs_command",
                             help="execute, follow, cancel and retry jobs (via the API)")
    _add_execute(jobs_sub, read)
    rollout_commands.add_commands(jobs_sub, read, uuid_text)

    p = jobs_sub.add_parser("list", parents=[read], help="executions, newest first")
    p.add_argument("--status", choices=JOB_STATUSES)
    _paging(p)
    p.set_defaults(func=cmd_list)

    p = _job_action(jobs_sub, "show", read, "an execution and its devices (paged)", cmd_show)
    p.add_argument("--status", choices=DEVICE_STATUSES, help="only devices in this status")
    _paging(p)

    p = jobs_sub.add_parser("watch", parents=[connection],
                            help="follow jobs until they end; exit 0 only if all SUCCEEDED")
    p.add_argument("job_id", nargs="+", type=uuid_text)
    _watch_options(p)
    p.set_defaults(func=cmd_watch)

    p = _job_action(jobs_sub, "cancel", connection, "cancel a job (or one device)", cmd_cancel)
    p.add_argument("--force", action="store_true", help="also cancel devices running it")
    p.add_argument("--reason")
    p.add_argument("--device", type=uuid_text, metavar="UUID", help="only this device")

    p = _job_action(jobs_sub, "retry", connection,
                    "queue a job again on its failed devices (or one device)", cmd_retry)
    p.add_argument("--device", type=uuid_text, metavar="UUID", help="only this device")
    p.add_argument("--watch", action="store_true", help="follow the job afterwards")
    _watch_options(p)

    _paging(_job_action(jobs_sub, "events", read, "a job's audit trail", cmd_events))
    _paging(_job_action(jobs_sub, "runs", read, "the runs of a recurring job", cmd_runs))

    p = _job_action(jobs_sub, "output", read, "a device's stdout/stderr for a job", cmd_output)
    p.add_argument("device", type=uuid_text, metavar="DEVICE")
