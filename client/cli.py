"""The operator commands of ``dispatcher``: they talk to the API, never to the database, so
they run anywhere with a URL and a token (``pip install 'device-jobs[client]'``).

``add_operator_commands`` adds them to the ``dispatcher`` parser. Every failure ends in one
line on stderr and an exit code of its own (``EXIT_*``), never a traceback.
"""

from __future__ import annotations

import argparse
import functools
import getpass
import json
import os
import sys
from collections.abc import Callable
from typing import Any

from client.api import DeviceJobsClient
from client.config import TOKEN_ENV, config_path, resolve, write_config
from client.errors import ApiError, ClientError, NotConfigured, ServerUnreachable

# The codes of a watched job's outcome (3, 4, 5) are in client.watch.
EXIT_API_ERROR = 1
EXIT_USAGE = 2
EXIT_INVALID_REQUEST = 6
EXIT_AUTH = 7
EXIT_NOT_CONFIGURED = 8
EXIT_UNREACHABLE = 9
EXIT_INTERRUPTED = 130

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


def with_client(run: Run) -> Callable[..., int]:
    """A ``dispatcher`` command calling ``run`` with a client of the configured API."""

    @functools.wraps(run)
    def command(args: argparse.Namespace, settings: object = None) -> int:
        try:
            connection = resolve(args.url, args.token)
            return run(args, DeviceJobsClient(connection.url, connection.token,
                                              args.http_timeout))
        except ClientError as exc:
            return error_exit(exc)
        except KeyboardInterrupt:
            return fail("interrupted", EXIT_INTERRUPTED)

    return command


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


def key_value(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    return key, value


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


def cmd_login(args: argparse.Namespace, settings: object = None) -> int:
    """Check a URL and token against the API, then keep them in the config file."""
    token = args.token or os.environ.get(TOKEN_ENV)
    if not token:
        token = (getpass.getpass("API token: ") if sys.stdin.isatty()
                 else sys.stdin.readline()).strip()
    if not token:
        return fail("no token given (--token, DEVICE_JOBS_TOKEN or standard input)",
                    EXIT_NOT_CONFIGURED)
    client = DeviceJobsClient(args.url, token, args.http_timeout)
    try:
        client.list_executions(limit=1)
    except ClientError as exc:
        return error_exit(exc)
    path = config_path()
    write_config(path, client.url, token)
    print(f"logged in to {client.url}; URL and token saved in {path} (mode 600)")
    return 0


def add_operator_commands(sub: argparse._SubParsersAction) -> None:
    """Add ``login``, ``jobs``, ``templates``, ``handlers`` and ``devices`` to ``sub``."""
    from client import enrollment_commands, jobs_commands, resource_commands

    p = sub.add_parser("login", help="check an API URL and token and save them (mode 600)")
    p.add_argument("--url", required=True, help="API base URL, e.g. https://jobs.example.com")
    p.add_argument("--token", help="API token (default: DEVICE_JOBS_TOKEN, else asked for)")
    p.add_argument("--http-timeout", type=float, default=30.0, help=argparse.SUPPRESS)
    p.set_defaults(func=cmd_login)
    jobs_commands.add_commands(sub, connection_options(), read_options())
    resource_commands.add_commands(sub, connection_options(), read_options())
    enrollment_commands.add_commands(sub, connection_options(), read_options())
