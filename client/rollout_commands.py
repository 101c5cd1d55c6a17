"""Staged rollouts from the command line: ``--stage``/``--gate``/``--stages`` on ``dispatcher
jobs execute``, ``dispatcher jobs pause|resume|promote|approve JOB``, and a watch that prints
each stage transition and stops with its own exit code when the rollout is paused, so a
pipeline stops there.

A ``--stage`` is ``NAME:COUNT``, ``NAME:PERCENT%``, ``COUNT``, ``PERCENT%`` or a bare ``NAME``
(the rest; only the last). ``--gate KEY=VALUE`` sets a gate field on every stage.
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any, TextIO

from client.api import DeviceJobsClient
from client.command import UsageError, read_json_file, with_client
from client.output import print_answer
from client.watch import EXIT_WATCH_TIMEOUT, exit_code
from schemas.command_line import key_value
from schemas.vocabulary import ENDED_JOB, PAUSED

# The rollout was paused (a gate failed, or passed with on_success: pause): a person decides.
EXIT_ROLLOUT_PAUSED = 10
ACTIONS = {
    "pause": "pause a staged rollout: nothing more is handed out",
    "resume": "resume a paused rollout (after a failed gate: acknowledge, release the next stage)",
    "promote": "pass the current stage now and release the next one",
    "approve": "start a job created with --requires-approval",
}
GATE_INTEGERS = ("min_completed", "soak_seconds", "stage_timeout_minutes")
GATE_NUMBERS = ("min_success_percent", "max_failure_percent")


def parse_stage(spec: str) -> dict[str, Any]:
    """One ``--stage``: canary:2, ten:10%, 10%, 5, or rest."""
    name, _, size = spec.rpartition(":") if ":" in spec else ("", "", spec)
    try:
        if size.endswith("%"):
            return {"name": name or size, "percent": float(size[:-1])}
        if size.isdigit():
            return {"name": name or size, "count": int(size)}
    except ValueError:
        pass
    if name:
        raise UsageError(f"--stage {spec}: the size is a count (2) or a percent (10%)")
    return {"name": size}


def parse_gate(pairs: list[tuple[str, str]]) -> dict[str, Any]:
    gate: dict[str, Any] = {}
    for key, value in pairs:
        try:
            if key in GATE_INTEGERS:
                gate[key] = int(value)
            elif key in GATE_NUMBERS:
                gate[key] = float(value)
            else:
                gate[key] = value
        except ValueError:
            raise UsageError(f"--gate {key}={value}: not a number") from None
    return gate


def stage_fields(args: argparse.Namespace) -> dict[str, Any]:
    """The ``stages`` and ``requires_approval`` fields of an execute request, from the options."""
    fields: dict[str, Any] = {}
    stages: list[dict] = []
    if args.stages_file:
        loaded = read_json_file(args.stages_file)
        listed = loaded.get("stages") if isinstance(loaded, dict) else loaded
        if not isinstance(listed, list):
            raise UsageError(f"{args.stages_file}: a JSON list of stages (or {{\"stages\": …}})")
        stages = listed
    stages = stages + [parse_stage(spec) for spec in args.stage]
    gate = parse_gate(args.gate)
    if gate and not stages:
        raise UsageError("--gate needs --stage or --stages")
    if stages:
        fields["stages"] = [{**s, "gate": {**gate, **s.get("gate", {})}} if gate else s
                            for s in stages]
    if args.requires_approval:
        fields["requires_approval"] = True
    return fields


def add_stage_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--stage", action="append", default=[], metavar="NAME:SIZE",
                   help="a stage of a staged rollout, in order: canary:2, 10%%, rest")
    p.add_argument("--gate", type=key_value, action="append", default=[], metavar="KEY=VALUE",
                   help="a gate field of every stage (min_completed, min_success_percent, "
                        "max_failure_percent, soak_seconds, on_success, stage_timeout_minutes)")
    p.add_argument("--stages", dest="stages_file", metavar="FILE",
                   help="the stages as JSON (a file, - for stdin)")
    p.add_argument("--requires-approval", action="store_true",
                   help="hold the job until an admin approves it")


def rollout_line(rollout: dict) -> str:
    stages = ", ".join(
        f"{s['name']} {s['state']} ({s['succeeded']} ok, {s['failed']} failed, "
        f"{s['in_progress']} running, {s['queued']} queued of {s['size']})"
        for s in rollout["stages"])
    return f"rollout {rollout['state']}: {rollout['reason']} | {stages}"


def watch_rollout(client: DeviceJobsClient, job_id: str, *, interval_s: float = 2.0,
                  timeout_s: float | None = None, out: TextIO | None = None) -> int:
    """Follow a staged job, printing a line at each rollout or stage transition; answer
    EXIT_ROLLOUT_PAUSED when the rollout pauses, else the job's exit code once it ends."""
    out = out or sys.stdout
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    shown: tuple = ()
    while True:
        detail = client.get_execution(job_id)
        rollout = detail.get("rollout") or {"state": None, "stages": []}
        states = (rollout["state"], tuple(s["state"] for s in rollout["stages"]))
        if states != shown:
            out.write(rollout_line(rollout) + "\n")
            out.flush()
            shown = states
        if detail["job"]["status"] in ENDED_JOB:
            return exit_code([detail["job"]["status"]])
        if rollout["state"] == PAUSED:
            out.write(f"rollout paused: {rollout['reason']}\n")
            return EXIT_ROLLOUT_PAUSED
        if deadline is not None and time.monotonic() >= deadline:
            out.write(f"watch timed out after {timeout_s:g}s; the job goes on\n")
            return EXIT_WATCH_TIMEOUT
        time.sleep(interval_s)


def _action_command(action: str):
    @with_client
    def run(args: argparse.Namespace, client: DeviceJobsClient) -> int:
        rollout = client.rollout_action(args.job_id, action)
        print_answer(rollout, args.output, rollout_line(rollout))
        return 0

    run.__name__ = f"cmd_{action}"
    return run


def add_commands(jobs_sub: argparse._SubParsersAction, read: argparse.ArgumentParser,
                 job_id_type: Any) -> None:
    """``jobs pause|resume|promote|approve JOB``."""
    for action, summary in ACTIONS.items():
        p = jobs_sub.add_parser(action, parents=[read], help=summary)
        p.add_argument("job_id", type=job_id_type)
        p.set_defaults(func=_action_command(action))
