"""The operator commands of ``dispatcher``: they talk to the API, never to the database, so
they run anywhere with a URL and a token (``pip install 'device-jobs[client]'``).

``add_operator_commands`` adds them to the ``dispatcher`` parser (see ``dispatcher_cli``).
"""

from __future__ import annotations

import argparse
import getpass
import os
import sys

from client import (
    artifacts,
    enrollment_commands,
    fleet_commands,
    jobs_commands,
    resource_commands,
)
from client.api import DeviceJobsClient
from client.command import (
    EXIT_NOT_CONFIGURED,
    connection_options,
    error_exit,
    fail,
    insecure_http_allowed,
    read_options,
)
from client.config import TOKEN_ENV, config_path, write_config
from client.errors import ClientError


def cmd_login(args: argparse.Namespace) -> int:
    """Check a URL and token against the API, then keep them in the config file."""
    token = args.token or os.environ.get(TOKEN_ENV)
    if not token:
        token = (getpass.getpass("API token: ") if sys.stdin.isatty()
                 else sys.stdin.readline()).strip()
    if not token:
        return fail("no token given (--token, DEVICE_JOBS_TOKEN or standard input)",
                    EXIT_NOT_CONFIGURED)
    try:
        client = DeviceJobsClient(args.url, token, args.http_timeout, insecure_http_allowed())
        client.list_executions(limit=1)
    except ClientError as exc:
        return error_exit(exc)
    path = config_path()
    write_config(path, client.url, token)
    print(f"logged in to {client.url}; URL and token saved in {path} (mode 600)")
    return 0


def add_operator_commands(sub: argparse._SubParsersAction) -> None:
    """Add ``login``, ``jobs``, ``templates``, ``handlers`` and ``devices`` to ``sub``."""
    p = sub.add_parser("login", help="check an API URL and token and save them (mode 600)")
    p.add_argument("--url", required=True, help="API base URL, e.g. https://jobs.example.com")
    p.add_argument("--token", help="API token (default: DEVICE_JOBS_TOKEN, else asked for)")
    p.add_argument("--http-timeout", type=float, default=30.0, help=argparse.SUPPRESS)
    p.set_defaults(func=cmd_login)
    jobs_commands.add_commands(sub, connection_options(), read_options())
    resource_commands.add_commands(sub, connection_options(), read_options())
    enrollment_commands.add_commands(sub, connection_options(), read_options())
    fleet_commands.add_commands(sub, connection_options(), read_options())
    artifacts.add_commands(sub, connection_options(), read_options())
