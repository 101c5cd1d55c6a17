"""The server's commands of ``dispatcher``: the database, tokens, devices, the server
processes, the demo and the signing key.

``add_server_commands`` adds them to the ``dispatcher`` parser (see ``dispatcher_cli``). A
command imports the server's libraries when it runs, so the parser can be built where only the
client is installed.
"""

from __future__ import annotations

import argparse
import functools
import json
import logging
import os
import shlex
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from dispatcher.commands import stack
from dispatcher.commands.demo.api import ApiClientFactory
from dispatcher.commands.secret_checks import refuse_unsafe_start
from dispatcher.commands.signing_key import add_signing_commands
from dispatcher.config import Settings
from schemas.command_line import key_value
from schemas.vocabulary import TOKEN_ROLES

# The one signature of every ``dispatcher`` command, the server's and the operator's.
Command = Callable[[argparse.Namespace], int]
Run = Callable[[argparse.Namespace, Settings], int]


def with_settings(run: Run) -> Command:
    """The command calling ``run`` with the settings of the environment."""

    @functools.wraps(run)
    def command(args: argparse.Namespace) -> int:
        return run(args, Settings.from_env())

    return command


def passed_on(extra: list[str]) -> list[str]:
    """The options after our own for the server we start, without the "--" that separates
    them (argparse's REMAINDER keeps it)."""
    return extra[1:] if extra[:1] == ["--"] else extra


@with_settings
def cmd_migrate(args: argparse.Namespace, settings: Settings) -> int:
    migrate_and_install(settings)
    return 0


def migrate_and_install(settings: Settings) -> None:
    from dispatcher import db
    from dispatcher.catalog.standard.library import install_standard_library
    from dispatcher.migrate import ensure_database, migrate

    ensure_database(settings.session_database_url)
    applied = migrate(settings.session_database_url)
    print(f"migrations applied: {applied or 'none (schema up to date)'}")
    db.configure(settings)
    installed = install_standard_library(settings.max_document_bytes)
    print(f"standard handlers created: {', '.join(installed.handlers) or 'none (all present)'}")
    print(f"standard templates created: {', '.join(installed.templates) or 'none (all present)'}")


@with_settings
def cmd_token_create(args: argparse.Namespace, settings: Settings) -> int:
    from dispatcher import db
    from dispatcher.fleet import tokens

    db.configure(settings)
    token, record = tokens.create_api_token(args.role, args.name, created_by="cli")
    print(f"token id={record['id']} role={record['role']} name={record['name']}")
    print(token)
    return 0


@with_settings
def cmd_token_list(args: argparse.Namespace, settings: Settings) -> int:
    from dispatcher import db
    from dispatcher.fleet import tokens

    db.configure(settings)
    for record in tokens.list_api_tokens():
        print(json.dumps(record, default=str))
    return 0


@with_settings
def cmd_token_revoke(args: argparse.Namespace, settings: Settings) -> int:
    from dispatcher import db
    from dispatcher.fleet import tokens

    db.configure(settings)
    record = tokens.revoke_api_token(args.id)
    print(f"token id={record['id']} revoked at {record['revoked_at']}")
    return 0


@with_settings
def cmd_device_register(args: argparse.Namespace, settings: Settings) -> int:
    from dispatcher import db
    from dispatcher.fleet.devices import register_device
    from dispatcher.sender import deliver

    db.configure(settings)
    device, token = deliver(
        register_device(args.name, args.type, dict(args.attr), actor="cli:device register"),
        settings,
    )
    if args.json:
        print(json.dumps({**device, "token": token}, default=str))
        return 0
    print(f"device registered name={device['device_name']} type={device['device_type']}")
    # In the agent's own variable names, ready to paste into its environment file.
    print(f"JOBS_AGENT_DEVICE_UUID={device['uuid']}")
    print(f"JOBS_AGENT_TOKEN={token}")
    return 0


def _exec(argv: list[str], env: dict[str, str] | None = None) -> int:
    """Replace this process, so signals from a supervisor reach the server directly."""
    logging.getLogger(__name__).debug("exec %s", shlex.join(argv))
    sys.stdout.flush()
    os.execvpe(argv[0], argv, os.environ if env is None else env)
    return 1  # not reached


@with_settings
def cmd_serve(args: argparse.Namespace, settings: Settings) -> int:
    refuse_unsafe_start(settings, os.environ, api_bind=args.bind)
    from dispatcher.signing import check_signing

    check_signing(settings)
    return _exec(stack.gunicorn_command(args.bind, args.workers, args.threads,
                                       passed_on(args.gunicorn_args)))


@with_settings
def cmd_worker(args: argparse.Namespace, settings: Settings) -> int:
    refuse_unsafe_start(settings, os.environ)
    env = dict(os.environ)
    if args.metrics_port:
        env["WORKER_METRICS_PORT"] = str(args.metrics_port)
        if not env.get(stack.METRICS_DIR_ENV):
            # The exporter in the main process adds up what the pool processes write here.
            env[stack.METRICS_DIR_ENV] = tempfile.mkdtemp(prefix="device-jobs-worker-metrics-")
    return _exec(stack.worker_command(args.log_level, args.queues, args.concurrency,
                                      args.hostname, passed_on(args.celery_args)), env)


@with_settings
def cmd_beat(args: argparse.Namespace, settings: Settings) -> int:
    refuse_unsafe_start(settings, os.environ)
    return _exec(stack.beat_command(args.log_level, args.schedule_file,
                                      passed_on(args.celery_args)))


@with_settings
def cmd_flower(args: argparse.Namespace, settings: Settings) -> int:
    refuse_unsafe_start(settings, os.environ, flower=True)
    return _exec(stack.flower_command(args.address, args.port, passed_on(args.flower_args)))


@with_settings
def cmd_dev(args: argparse.Namespace, settings: Settings) -> int:
    from honcho.manager import Manager

    refuse_unsafe_start(settings, os.environ, flower=True, api_bind=f"127.0.0.1:{args.api_port}")
    migrate_and_install(settings)
    with tempfile.TemporaryDirectory(prefix="device-jobs-dev-") as run_dir:
        env = stack.local_stack_environment(Path(run_dir))
        commands = stack.local_stack_commands(
            Path(run_dir), args.api_port, args.flower_port, args.log_level.upper()
        )
        manager = Manager()
        for name, argv in commands.items():
            manager.add_process(name, "exec " + shlex.join(argv), env=env)
        print(f"API      http://127.0.0.1:{args.api_port}/api/v1/docs", flush=True)
        print(f"Flower   http://127.0.0.1:{args.flower_port}/", flush=True)
        print(f"metrics  http://127.0.0.1:{args.api_port}/metrics", flush=True)
        manager.loop()
        return manager.returncode or 0


def demo_command(api_client: ApiClientFactory) -> Command:
    """``dispatcher demo``, driving the API through the clients ``api_client`` makes."""

    @with_settings
    def cmd_demo(args: argparse.Namespace, settings: Settings) -> int:
        from dispatcher.commands.demo.run import DemoOptions, run_demo

        return run_demo(settings, DemoOptions(
            devices=args.devices, keep_running=args.keep_running, timeout_s=args.timeout_s,
            database_name=args.database_name,
        ), api_client)

    return cmd_demo


def _add_token_commands(sub: argparse._SubParsersAction) -> None:
    token = sub.add_parser("token", help="manage admin and viewer API tokens")
    token_sub = token.add_subparsers(dest="token_command", required=True, metavar="ACTION")
    p = token_sub.add_parser("create", help="create a token and print it once")
    p.add_argument("--role", choices=TOKEN_ROLES, default="admin")
    p.add_argument("--name", default="cli", help="a label for the token")
    p.set_defaults(func=cmd_token_create)
    p = token_sub.add_parser("list", help="list tokens (never their values)")
    p.set_defaults(func=cmd_token_list)
    p = token_sub.add_parser("revoke", help="revoke a token by id")
    p.add_argument("id", type=int)
    p.set_defaults(func=cmd_token_revoke)


def _add_device_commands(sub: argparse._SubParsersAction) -> None:
    device = sub.add_parser("device", help="manage devices")
    device_sub = device.add_subparsers(dest="device_command", required=True, metavar="ACTION")
    p = device_sub.add_parser(
        "register", help="register a device and print its uuid and token (shown once)"
    )
    p.add_argument("--name", required=True, help="device name")
    p.add_argument("--type", default="generic", help="device type, e.g. raspberry-pi")
    p.add_argument("--attr", type=key_value, action="append", default=[], metavar="KEY=VALUE",
                   help="an attribute used by group filters (repeatable)")
    p.add_argument("--json", action="store_true", help="print the device and token as JSON")
    p.set_defaults(func=cmd_device_register)


def _add_process_commands(sub: argparse._SubParsersAction, api_client: ApiClientFactory) -> None:
    p = sub.add_parser("serve", help="run the API with gunicorn")
    p.add_argument("--bind", default="127.0.0.1:8000", help="address:port (default %(default)s)")
    p.add_argument("--workers", type=int, help="gunicorn worker processes (default: config file)")
    p.add_argument("--threads", type=int, help="threads per worker (default: config file)")
    p.add_argument("gunicorn_args", nargs=argparse.REMAINDER,
                   help="further gunicorn options, after --")
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("worker", help="run a Celery worker (fan-out, nudges, maintenance)")
    p.add_argument("--queues", help="comma-separated queues (default: all of them)")
    p.add_argument("--concurrency", type=int, help="worker processes (default: CPU count)")
    p.add_argument("--hostname", help="node name, e.g. worker1@%%h")
    p.add_argument("--metrics-port", type=int,
                   help="serve this worker's Prometheus metrics on this port")
    p.add_argument("celery_args", nargs=argparse.REMAINDER, help="further celery options")
    p.set_defaults(func=cmd_worker)

    p = sub.add_parser("beat", help="run Celery beat (periodic sweeps and schedules)")
    p.add_argument("--schedule-file", help="where beat keeps its last-run times")
    p.add_argument("celery_args", nargs=argparse.REMAINDER, help="further celery options")
    p.set_defaults(func=cmd_beat)

    p = sub.add_parser("flower", help="run Flower, the Celery monitor, against the broker")
    p.add_argument("--address", default="127.0.0.1", help="listen address (default %(default)s)")
    p.add_argument("--port", type=int, default=5555, help="listen port (default %(default)s)")
    p.add_argument("flower_args", nargs=argparse.REMAINDER,
                   help="further Flower options, e.g. --basic-auth=user:password")
    p.set_defaults(func=cmd_flower)

    p = sub.add_parser(
        "dev", help="migrate, then run API, worker, beat and Flower in the foreground; Ctrl-C "
        "stops them all"
    )
    p.add_argument("--api-port", type=int, default=8000, help="default %(default)s")
    p.add_argument("--flower-port", type=int, default=5555, help="default %(default)s")
    p.set_defaults(func=cmd_dev)

    p = sub.add_parser(
        "demo", help="start a whole stack with simulated devices, run jobs on them, summarize"
    )
    p.add_argument("--devices", type=int, default=20, help="simulated devices (default 20)")
    p.add_argument("--keep-running", action="store_true",
                   help="leave the stack up after the summary until Ctrl-C")
    p.add_argument("--timeout-s", type=float, default=180.0,
                   help="give up waiting for the jobs after this long (default %(default)s)")
    p.add_argument("--database-name", default="device_jobs_demo",
                   help="database recreated for the demo, on DATABASE_URL's server "
                        "(default %(default)s)")
    p.set_defaults(func=demo_command(api_client))


def add_server_commands(sub: argparse._SubParsersAction, api_client: ApiClientFactory) -> None:
    """Add ``migrate``, ``token``, ``device``, ``serve``, ``worker``, ``beat``, ``flower``,
    ``dev``, ``demo`` and ``signing-key`` to ``sub``; the demo's API clients come from
    ``api_client``."""
    p = sub.add_parser("migrate", help="create the database if needed and apply migrations")
    p.set_defaults(func=cmd_migrate)
    _add_token_commands(sub)
    _add_device_commands(sub)
    _add_process_commands(sub, api_client)
    add_signing_commands(sub)
