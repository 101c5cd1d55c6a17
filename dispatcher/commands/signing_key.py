"""``dispatcher signing-key create``: the operator's Ed25519 key pair for signed jobs."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def cmd_signing_key_create(args: argparse.Namespace) -> int:
    from dispatcher.signing import create_key_file

    try:
        public_key = create_key_file(Path(args.out))
    except FileExistsError:
        print(f"error: {args.out} exists; a key is never overwritten", file=sys.stderr)
        return 1
    print(f"private key written to {args.out} (mode 600); set SIGNING_KEY_FILE={args.out}")
    print("give every agent this public key as signing_public_key:")
    print(public_key)
    return 0


def add_signing_commands(sub: argparse._SubParsersAction) -> None:
    signing = sub.add_parser("signing-key", help="the Ed25519 key that signs job documents")
    signing_sub = signing.add_subparsers(dest="signing_command", required=True,
                                         metavar="ACTION")
    p = signing_sub.add_parser(
        "create", help="write a new private key file (mode 600) and print its public key"
    )
    p.add_argument("--out", required=True, help="the private key file to create")
    p.set_defaults(func=cmd_signing_key_create)
