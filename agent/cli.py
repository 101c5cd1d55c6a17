"""The ``jobs-agent`` command (also ``python -m agent``).

``jobs-agent run`` polls for jobs and runs them until stopped (SIGTERM or Ctrl-C).
``jobs-agent run-document FILE`` runs one job document here and prints its result as JSON;
the exit code is 0 when it SUCCEEDED and 1 otherwise.
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
from agent.config import FIELDS, AgentConfig, ConfigError, load_config
from agent.daemon import Agent, device_api, engine_settings, handler_store
from agent.engine import REJECTED, SUCCEEDED, JobEngine, JobInterrupted, JobResult

log = logging.getLogger("agent")

EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", help="INI or JSON config file (default "
                        "/etc/jobs-agent/agent.conf when it exists, or JOBS_AGENT_CONFIG)")
    for name, spec in FIELDS.items():
        kind = type(spec.default)
        # A yes/no setting is parsed with the others' words ("true", "no"...) by load_config.
        common.add_argument(f"--{name.replace('_', '-')}", dest=name,
                            type=str if kind is bool else kind, default=None,
                            metavar=kind.__name__.upper(), help=f"default: {spec.default!r}")
    parser = argparse.ArgumentParser(prog="jobs-agent", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"jobs-agent {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("run", parents=[common], help="poll for jobs and run them")
    one = commands.add_parser("run-document", parents=[common],
                              help="run one job document here and print the result")
    one.add_argument("file", help="job document (JSON), or - for stdin")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
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
