"""What every operator command is made of: its signature, the options it shares with the
others, the argument types and files it reads, and the exit code of each failure.

Every failure ends in one line on stderr and an exit code of its own (``EXIT_*``), never a
traceback.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import sys
import uuid
from collections.abc import Callable, Iterable
from typing import Any, cast

from client.api import INSECURE_HTTP_ENV, JSON, DeviceJobsClient
from client.config import TOKEN_ENV, resolve
from client.errors import ApiError, ClientError, NotConfigured, ServerUnreachable
from client.output import Column, print_answer, print_record, print_rows

# The codes of a watched job's outcome (3, 4, 5) are in client.watch.
EXIT_API_ERROR = 1
EXIT_USAGE = 2
EXIT_INVALID_REQUEST = 6
EXIT_AUTH = 7
EXIT_NOT_CONFIGURED = 8
EXIT_UNREACHABLE = 9
EXIT_INTERRUPTED = 130

# The one signature of every ``dispatcher`` command, the server's and the operator's.
Command = Callable[[argparse.Namespace], int]
Run = Callable[[argparse.Namespace, DeviceJobsClient], int]


class UsageError(ClientError):
    """Options that do not make a request (a file that cannot be read, a name not found)."""


def fail(message: str, code: int) -> int:
    print(f"error: {message}", file=sys.stderr)
    return code


def error_exit(exc: ClientError) -> int:
    """The one-line message and the exit code for a client error."""
    if isinstance(exc, NotConfigured):
        return fail(str(exc), EXIT_NOT_CONFIGURED)
    if isinstance(exc, ServerUnreachable):
        return fail(str(exc), EXIT_UNREACHABLE)
    if isinstance(exc, UsageError):
        return fail(str(exc), EXIT_USAGE)
    if isinstance(exc, ApiError):
        if exc.status == 401:
            return fail(f"{exc.one_line()}: check {TOKEN_ENV} or run 'dispatcher login'",
                        EXIT_AUTH)
        if exc.status == 403:
            return fail(exc.one_line(), EXIT_AUTH)
        if exc.status == 400:
            return fail(exc.one_line(), EXIT_INVALID_REQUEST)
        return fail(exc.one_line(), EXIT_API_ERROR)
    return fail(str(exc), EXIT_API_ERROR)


def with_client(run: Run) -> Command:
    """The command calling ``run`` with a client of the configured API."""

    @functools.wraps(run)
    def command(args: argparse.Namespace) -> int:
        try:
            connection = resolve(args.url, args.token)
            return run(args, DeviceJobsClient(connection.url, connection.token,
                                              args.http_timeout, insecure_http_allowed()))
        except ClientError as exc:
            return error_exit(exc)
        except KeyboardInterrupt:
            return fail("interrupted", EXIT_INTERRUPTED)

    return command


def insecure_http_allowed() -> bool:
    """Whether DEVICE_JOBS_ALLOW_INSECURE_HTTP lets the client use plain http to another host."""
    return os.environ.get(INSECURE_HTTP_ENV, "").strip().lower() in {"1", "true", "yes", "on"}


def list_command(key: str, columns: list[Column],
                 read: Callable[[DeviceJobsClient, argparse.Namespace], JSON]) -> Command:
    """The command printing the page of a list that ``read`` asks the API for: its ``key``
    rows as a table of ``columns``, or the whole answer as JSON."""

    @with_client
    def command(args: argparse.Namespace, client: DeviceJobsClient) -> int:
        page = read(client, args)
        print_rows(page[key], columns, args.output, page)
        return 0

    return command


def rows_command(columns: list[Column],
                 read: Callable[[DeviceJobsClient, argparse.Namespace], Iterable[dict]]
                 ) -> Command:
    """The command printing every row ``read`` finds, as a table of ``columns`` or as JSON."""

    @with_client
    def command(args: argparse.Namespace, client: DeviceJobsClient) -> int:
        print_rows(list(read(client, args)), columns, args.output)
        return 0

    return command


def show_command(find: Callable[[DeviceJobsClient, argparse.Namespace], JSON]) -> Command:
    """The command printing the one record that ``find`` asks the API for."""

    @with_client
    def command(args: argparse.Namespace, client: DeviceJobsClient) -> int:
        print_record(find(client, args), args.output)
        return 0

    return command


def print_applied(args: argparse.Namespace, kind: str, outcome: str, stored: JSON,
                  line: str) -> int:
    """What ``apply`` did to a ``kind`` of thing: ``line``, or the outcome and the stored
    thing as JSON."""
    print_answer({"outcome": outcome, kind: stored}, args.output, line)
    return 0


class Actions(argparse._SubParsersAction):
    """The actions of one kind of thing (``templates list``, ``templates show`` …)."""

    def add(self, name: str, parent: argparse.ArgumentParser, run: Command, help: str
            ) -> argparse.ArgumentParser:
        """The ``name`` action: it runs ``run``, with ``parent``'s options."""
        parser = self.add_parser(name, parents=[parent], help=help)
        parser.set_defaults(func=run)
        return parser


def command_group(sub: argparse._SubParsersAction, name: str, dest: str, help: str) -> Actions:
    """The ``name ACTION`` commands of one kind of thing, the action chosen kept in ``dest``."""
    group = sub.add_parser(name, help=help)
    return cast(Actions, group.add_subparsers(dest=dest, required=True, metavar="ACTION",
                                              action=Actions))


def connection_options() -> argparse.ArgumentParser:
    parent = argparse.ArgumentParser(add_help=False)
    parent.add_argument("--url", help="API base URL (default: DEVICE_JOBS_URL, then the config "
                        "file from 'dispatcher login')")
    parent.add_argument("--token", help="API token (default: DEVICE_JOBS_TOKEN, then the "
                        "config file)")
    parent.add_argument("--http-timeout", type=float, default=30.0, metavar="SECONDS",
                        help="per-request timeout (default %(default)s)")
    return parent


def read_options() -> argparse.ArgumentParser:
    parent = argparse.ArgumentParser(add_help=False, parents=[connection_options()])
    parent.add_argument("--output", "-o", choices=("table", "json"), default="table",
                        help="table (fits the terminal) or json (default %(default)s)")
    return parent


def uuid_text(text: str) -> str:
    try:
        return str(uuid.UUID(text))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a UUID: {text!r}") from None


def read_file(path: str) -> str:
    try:
        if path == "-":
            return sys.stdin.read()
        with open(path, encoding="utf-8") as f:
            return f.read()
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror or exc}") from None


def read_json_file(path: str) -> Any:
    try:
        return json.loads(read_file(path))
    except ValueError as exc:
        raise UsageError(f"{path} is not valid JSON: {exc}") from None
