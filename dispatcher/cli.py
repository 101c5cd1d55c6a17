"""The ``dispatcher`` command: one entry point for every server-side operation."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Callable

from dispatcher.config import Settings

Command = Callable[[argparse.Namespace, Settings], int]


def cmd_migrate(args: argparse.Namespace, settings: Settings) -> int:
    from dispatcher.migrate import ensure_database, migrate

    ensure_database(settings.database_url)
    applied = migrate(settings.database_url)
    print(f"migrations applied: {applied or 'none (schema up to date)'}")
    return 0


def cmd_token_create(args: argparse.Namespace, settings: Settings) -> int:
    from dispatcher import db, tokens

    db.configure(settings)
    token, record = tokens.create_api_token(args.role, args.name, created_by="cli")
    print(f"token id={record['id']} role={record['role']} name={record['name']}")
    print(token)
    return 0


def cmd_token_list(args: argparse.Namespace, settings: Settings) -> int:
    from dispatcher import db, tokens

    db.configure(settings)
    for record in tokens.list_api_tokens():
        print(json.dumps(record, default=str))
    return 0


def cmd_token_revoke(args: argparse.Namespace, settings: Settings) -> int:
    from dispatcher import db, tokens

    db.configure(settings)
    record = tokens.revoke_api_token(args.id)
    print(f"token id={record['id']} revoked at {record['revoked_at']}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dispatcher", description="device-jobs server: API, workers and administration."
    )
    parser.add_argument("--log-level", default="INFO", help="logging level (default INFO)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("migrate", help="create the database if needed and apply migrations")
    p.set_defaults(func=cmd_migrate)

    token = sub.add_parser("token", help="manage admin and viewer API tokens")
    token_sub = token.add_subparsers(dest="token_command", required=True, metavar="ACTION")
    p = token_sub.add_parser("create", help="create a token and print it once")
    p.add_argument("--role", choices=["admin", "viewer"], default="admin")
    p.add_argument("--name", default="cli", help="a label for the token")
    p.set_defaults(func=cmd_token_create)
    p = token_sub.add_parser("list", help="list tokens (never their values)")
    p.set_defaults(func=cmd_token_list)
    p = token_sub.add_parser("revoke", help="revoke a token by id")
    p.add_argument("id", type=int)
    p.set_defaults(func=cmd_token_revoke)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )
    try:
        return args.func(args, Settings.from_env())
    except Exception as exc:  # a clear one-line error for the operator, not a traceback
        from dispatcher.errors import DispatcherError

        if isinstance(exc, DispatcherError):
            print(f"error: {exc.message}", file=sys.stderr)
            return 1
        raise


if __name__ == "__main__":
    sys.exit(main())
