"""The ``jobs-agent`` command (also ``python -m agent``).

``jobs-agent run`` polls for jobs and runs them until stopped (SIGTERM or Ctrl-C).
``jobs-agent run-document FILE`` runs one job document here and prints its result as JSON;
the exit code is 0 when it SUCCEEDED and 1 otherwise.
``jobs-agent enroll --server URL --enrollment-token T`` gives this device its identity.
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import threading
from pathlib import Path

from agent import __version__
from agent.config import DEFAULT_CONFIG_FILE, FIELDS, AgentConfig, ConfigError, load_config
from agent.daemon import Agent, device_api, engine_settings, handler_store
from agent.engine import REJECTED, SUCCEEDED, JobEngine, JobInterrupted, JobResult
from agent.enrollment import (
    DEFAULT_TOKEN_FILE,
    HARDWARE_SOURCES,
    EnrollmentError,
    enroll,
    start_service,
)

log = logging.getLogger("agent")

EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", help="INI or JSON config file (default "
                        "/etc/jobs-agent/agent.conf when it exists, or JOBS_AGENT_CONFIG)")
    for name, spec in FIELDS.items():
        kind = type(spec.default)
        # Booleans are read by load_config ("true"/"false"); bool("false") would be True.
        common.add_argument(f"--{name.replace('_', '-')}", dest=name,
                            type=str if kind is bool else kind, default=None,
                            metavar=kind.__name__.upper(), help=f"default: {spec.default!r}")
    parser = argparse.ArgumentParser(
        prog="jobs-agent", formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Runs the jobs a device-jobs server queues for this device.\n\n"
        "  jobs-agent enroll --server URL --enrollment-token TOKEN [--name NAME]\n"
        "  jobs-agent run                 (what the jobs-agent service runs)\n"
        "  jobs-agent run-document FILE   (one job document, here and now)",
        epilog="Files: /etc/jobs-agent/agent.conf and /etc/jobs-agent/token (mode 600, written "
        "by enroll), /etc/jobs-agent/agent.conf.example (every setting), "
        "/etc/jobs-agent/handlers, /var/lib/jobs-agent (job state). "
        "`jobs-agent COMMAND --help` for each command's options.")
    parser.add_argument("--version", action="version", version=f"jobs-agent {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("run", parents=[common], help="poll for jobs and run them")
    one = commands.add_parser("run-document", parents=[common],
                              help="run one job document here and print the result")
    one.add_argument("file", help="job document (JSON), or - for stdin")
    joining = commands.add_parser(
        "enroll", help="trade an enrollment token for this device's identity, write the "
        "config and token files (mode 600) and start the service",
        description="Enroll this device with a device-jobs server. The same hardware "
        "(/etc/machine-id, a Raspberry Pi's serial) enrolling again keeps its identity.")
    joining.add_argument("--server", required=True, metavar="URL",
                         help="the server as this device reaches it, e.g. https://jobs.example.com")
    joining.add_argument("--enrollment-token", required=True, metavar="TOKEN",
                         help="made by an admin (POST /api/v1/enrollment-tokens)")
    joining.add_argument("--name", default="", help="device name (default: the host name)")
    joining.add_argument("--config", default=DEFAULT_CONFIG_FILE,
                         help="config file to write (default %(default)s)")
    joining.add_argument("--token-file", default=DEFAULT_TOKEN_FILE,
                         help="token file to write (default %(default)s)")
    joining.add_argument("--ca-file", default="", help="a private CA for an https server")
    joining.add_argument("--allow-insecure-http", action="store_true",
                         help="allow plain http to another host (a network you trust)")
    joining.add_argument("--hardware-id-file", default="", metavar="FILE",
                         help="what identifies this device, instead of its serial or "
                         "/etc/machine-id (a container's volume, say)")
    joining.add_argument("--no-start", action="store_true",
                         help="do not start the jobs-agent service afterwards")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "enroll":
        return enroll_here(args)
    try:
        config = load_config(vars(args), config_file=args.config)
        logging.basicConfig(
            level=config.log_level.upper(), stream=sys.stderr,
            format="%(asctime)s %(levelname)s %(name)s %(message)s",
        )
        if args.command == "run":
            return run(config)
        return run_document(config, args.file)
    except ConfigError as exc:
        print(f"jobs-agent: {exc}", file=sys.stderr)
        return EXIT_USAGE


def enroll_here(args: argparse.Namespace) -> int:
    try:
        enrolled = enroll(args.server, args.enrollment_token, args.name, args.config,
                          args.token_file, args.ca_file, args.allow_insecure_http,
                          (Path(args.hardware_id_file),) if args.hardware_id_file
                          else HARDWARE_SOURCES)
    except EnrollmentError as exc:
        print(f"jobs-agent: enrollment failed: {exc}", file=sys.stderr)
        return 1
    print(f"enrolled as {enrolled.device_name} ({enrolled.device_uuid}); "
          f"wrote {args.config} and {args.token_file}")
    if enrolled.status == "pending":
        print("pending: an operator must accept this device (dispatcher devices accept "
              f"{enrolled.device_uuid}); until then its polls are refused")
    if enrolled.mqtt:
        print(f"MQTT nudges from {enrolled.mqtt['url']} as {enrolled.mqtt['username']}"
              + ("" if enrolled.mqtt.get("ready") else
                 f" (not usable yet: {enrolled.mqtt.get('problem', '')}; the agent asks the "
                 "server again when the broker refuses it)"))
    if not args.no_start:
        print(start_service())
    return 0


def run(config: AgentConfig) -> int:
    agent = Agent(config)
    _on_stop_signals(agent.stop)
    agent.run()
    return 0


def run_document(config: AgentConfig, file: str) -> int:
    try:
        text = sys.stdin.read() if file == "-" else Path(file).read_text()
    except OSError as exc:
        print(f"jobs-agent: cannot read {file}: {exc.strerror}", file=sys.stderr)
        return EXIT_USAGE
    api = device_api(config) if config.has_server else None
    engine = JobEngine(engine_settings(config), handler_store(config, api))
    interrupt = threading.Event()
    _on_stop_signals(interrupt.set)
    try:
        result = engine.run_document(json.loads(text), interrupt)
    except ValueError as exc:
        result = JobResult(REJECTED, reason=f"invalid job document: not JSON: {exc}")
    except JobInterrupted:
        print("jobs-agent: interrupted; the running step was stopped", file=sys.stderr)
        return EXIT_INTERRUPTED
    print(json.dumps(result.report_body(), indent=2))
    return 0 if result.status == SUCCEEDED else 1


def _on_stop_signals(stop) -> None:
    def handler(signum, frame) -> None:
        log.info("signal received signum=%d, stopping", signum)
        stop()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)
