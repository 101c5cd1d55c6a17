"""The ``dispatcher`` command: the server's commands and the operator's, in one parser.

It stands outside both packages because it joins them: the server (``dispatcher``) and the
operator's client (``client``) import only ``schemas``, never each other. Every command has one
signature, ``(args) -> int``. The server's commands import their libraries when they run, so
the operator commands work where only ``device-jobs[client]`` is installed.
"""

from __future__ import annotations

import argparse
import os
import sys

from client.api import DeviceJobsClient
from client.cli import add_operator_commands
from client.command import error_exit
from client.errors import ClientError
from dispatcher.commands.cli import add_server_commands
from dispatcher.errors import DispatcherError
from dispatcher.logs import configure_logging


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dispatcher", description="device-jobs server: API, workers and administration."
    )
    parser.add_argument("--log-level", default=os.environ.get("LOG_LEVEL") or "INFO",
                        help="logging level (default: LOG_LEVEL or INFO)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    add_server_commands(sub, api_client=DeviceJobsClient)
    add_operator_commands(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    configure_logging(args.log_level)
    try:
        return args.func(args)
    except DispatcherError as exc:  # a clear one-line error for the operator, not a traceback
        print(f"error: {exc.message}", file=sys.stderr)
        return 1
    except ClientError as exc:
        return error_exit(exc)


if __name__ == "__main__":
    sys.exit(main())
