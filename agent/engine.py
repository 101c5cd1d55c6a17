"""The job engine: runs a job document v1.0 step by step and says how it went.

Semantics, close to the AWS IoT Device Client where that is sensible:

- steps run in order; a failing step stops the job unless it has ``ignoreStepFailure``;
- a step fails when it cannot start, exits non-zero, times out, or writes more stderr lines
  than ``allowStdErr`` allows (false: none, true: any, a number N: at most N lines);
- ``finalStep`` always runs last, also after a failure (it is for cleanup);
- ``runHandler`` scripts get ``runAsUser`` (or "") as their first argument and then ``args``
  (the handler's ``default_args`` when the step gives none), as AWS handlers expect; a step the
  server pinned at execute runs with its pinned interpreter and ``args``, nothing the server
  says later;
- a reboot step (a reboot command, the ``reboot`` handler, or a step with ``rebootsDevice``)
  is recorded as such before it starts; when it succeeds the agent waits for the system to go
  down, and the job resumes after the next start (see ``agent.recovery``).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Protocol

from marshmallow import ValidationError

from agent.downloads import (
    ArtifactSource,
    DownloadFailed,
    DownloadStopped,
    download_step,
    is_agent_download,
)
from agent.handlers import HandlerStore, as_pinned, require_pinned_content, runnable_by
from agent.output import OutputTail
from agent.process import ProcessOutcome, RunAs, StepSetupError, resolve_user, run_process
from agent.server_api import AgentError
from schemas.artifacts import artifact_reference
from schemas.handlers import handler_names
from schemas.job_document import (
    RUN_COMMAND,
    RUN_HANDLER,
    pinned_at_execute,
    split_command,
    stderr_lines_allowed,
    validate_job_document,
)
from schemas.vocabulary import FAILED, REJECTED, SUCCEEDED

log = logging.getLogger(__name__)



class JobInterrupted(AgentError):
    """The run was stopped from outside (job canceled, agent stopping); there is no result."""


@dataclass
class JobResult:
    status: str
    executed_steps: int = 0
    exit_code: int | None = None
    failed_step: str | None = None
    reason: str | None = None
    stdout: str | None = None
    stderr: str | None = None
    status_details: dict = field(default_factory=dict)

    def report_body(self) -> dict:
        """The PATCH .../status body (snake_case, as in the product guide)."""
        return {key: value for key, value in asdict(self).items() if value is not None}


@dataclass
class Progress:
    """Where a run stands. Saved after every step, so a run can resume after a reboot."""

    next_index: int = 0  # position in steps + [finalStep]
    executed_steps: int = 0
    failure: dict | None = None  # {"step", "exit_code", "reason"} of the first failing step
    steps: list[dict] = field(default_factory=list)

    @classmethod
    def from_dict(cls, data: Mapping) -> Progress:
        return cls(
            int(data.get("next_index", 0)), int(data.get("executed_steps", 0)),
            data.get("failure"), list(data.get("steps") or []),
        )


class StepListener(Protocol):
    def step_starting(self, progress: Progress, step: dict, reboot: bool) -> None: ...

    def step_process_started(self, pid: int) -> None: ...

    def step_finished(self, progress: Progress) -> None: ...

    def step_progress(self, details: dict) -> None:
        """How far the running step's download has come."""


@dataclass(frozen=True)
class EngineSettings:
    output_cap_bytes: int = 64 * 1024
    step_timeout_s: float = 3600.0
    reboot_wait_s: float = 300.0


def is_reboot_command(argv: list[str]) -> bool:
    program, args = os.path.basename(argv[0]), argv[1:]
    if program == "reboot":
        return True
    if program == "shutdown":
        return any(a in ("-r", "--reboot") or (a[:1] == "-" and a[1:2] != "-" and "r" in a)
                   for a in args)
    if program == "systemctl":
        return "reboot" in args
    return program in ("init", "telinit") and args == ["6"]


REBOOT_HANDLER = "reboot"


def is_reboot_step(step: dict) -> bool:
    """Whether ``step`` takes the device down: marked so, the standard ``reboot`` handler (or
    its ".sh" twin), or a command that reboots."""
    if step.get("rebootsDevice"):
        return True
    if step["type"] == RUN_HANDLER:
        return REBOOT_HANDLER in handler_names(step["input"]["handler"])
    return is_reboot_command(split_command(step["input"]["command"]))


def step_environment(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The agent's environment without its own settings: steps never see the device token."""
    environ = os.environ if environ is None else environ
    return {k: v for k, v in environ.items() if not k.startswith("JOBS_AGENT_")}


def describe_errors(messages: object, prefix: str = "") -> list[str]:
    """marshmallow's nested messages as 'steps.0.input.command: Missing data …' lines."""
    if isinstance(messages, dict):
        lines = []
        for key, value in messages.items():
            path = prefix if key == "_schema" else f"{prefix}.{key}" if prefix else str(key)
            lines.extend(describe_errors(value, path))
        return lines
    if isinstance(messages, list) and all(isinstance(m, str) for m in messages):
        return [f"{prefix}: {' '.join(messages)}" if prefix else " ".join(messages)]
    return [f"{prefix}: {messages}"]


@dataclass(frozen=True)
class Plan:
    """A validated job document: its canonical form and its steps in running order, each with
    whether it is the ``finalStep``."""

    document: dict
    steps: list[tuple[dict, bool]]


def load_plan(document: object) -> Plan:
    """The plan of a job document; ValidationError when it is not a valid one."""
    doc = validate_job_document(document)
    steps = [(step, False) for step in doc["steps"]]
    if "finalStep" in doc:
        steps.append((doc["finalStep"], True))
    return Plan(doc, steps)


def rejection(exc: ValidationError) -> JobResult:
    reason = "invalid job document: " + "; ".join(describe_errors(exc.messages))
    return JobResult(REJECTED, reason=reason[:4000])


class JobEngine:
    def __init__(
        self,
        settings: EngineSettings,
        handlers: HandlerStore,
        env: Mapping[str, str] | None = None,
        artifacts: ArtifactSource | None = None,
    ) -> None:
        self.settings = settings
        self.handlers = handlers
        self.env = step_environment(env)
        self.artifacts = artifacts

    def run_document(self, document: object, interrupt: threading.Event) -> JobResult:
        """Validate ``document`` and run it: REJECTED when it is not a valid job document."""
        try:
            plan = load_plan(document)
        except ValidationError as exc:
            return rejection(exc)
        return self.run(plan, interrupt)

    def run(
        self,
        plan: Plan,
        interrupt: threading.Event,
        listener: StepListener | None = None,
        progress: Progress | None = None,
    ) -> JobResult:
        """Run ``plan`` (from ``progress`` when resuming); JobInterrupted if stopped."""
        progress = progress or Progress()
        stdout = OutputTail(self.settings.output_cap_bytes)
        stderr = OutputTail(self.settings.output_cap_bytes)
        for index in range(progress.next_index, len(plan.steps)):
            step, is_final = plan.steps[index]
            if progress.failure is not None and not is_final:
                continue
            if interrupt.is_set():
                raise JobInterrupted("stopped before step " + step["name"])
            progress.next_index = index
            self._run_step(step, progress, listener, stdout, stderr, interrupt)
        details = {"total_steps": len(plan.steps), "steps": progress.steps,
                   "stdout_truncated": stdout.truncated, "stderr_truncated": stderr.truncated}
        result = JobResult(
            SUCCEEDED, progress.executed_steps, exit_code=0, status_details=details,
            stdout=stdout.text() if plan.document["includeStdOut"] else None,
            stderr=stderr.text() or None,
        )
        if progress.failure is not None:
            result.status = FAILED
            result.exit_code = progress.failure.get("exit_code")
            result.failed_step = progress.failure["step"]
            result.reason = progress.failure["reason"]
        return result

    def _run_step(
        self,
        step: dict,
        progress: Progress,
        listener: StepListener | None,
        stdout: OutputTail,
        stderr: OutputTail,
        interrupt: threading.Event,
    ) -> None:
        name = step["name"]
        argv = split_command(step["input"]["command"]) if step["type"] == RUN_COMMAND else None
        reboot = is_reboot_step(step)
        if listener is not None:
            listener.step_starting(progress, step, reboot)
        log.info("step starting name=%r index=%d", name, progress.next_index)
        stderr_before = stderr.mark()
        timeout_s = step.get("timeoutSeconds") or self.settings.step_timeout_s
        try:
            outcome = self._start(step, argv, stdout, stderr, timeout_s, interrupt, listener)
        except StepSetupError as exc:
            outcome = ProcessOutcome(None, 0.0, error=str(exc))
        if outcome.interrupted:
            raise JobInterrupted(f"step {name!r} was stopped")
        if reboot and outcome.exit_code == 0:
            outcome = self._await_reboot(name, outcome, interrupt)
        reason = _failure_reason(step, outcome, timeout_s, stderr.lines_since(stderr_before))
        ignored = reason is not None and step["ignoreStepFailure"]
        verdict = "succeeded" if reason is None else "failed (ignored)" if ignored else "failed"
        progress.steps.append({
            "name": name, "exit_code": outcome.exit_code,
            "duration_ms": round(outcome.duration_s * 1000), "outcome": verdict,
        })
        progress.executed_steps += 1
        progress.next_index += 1
        if reason is not None:
            log.warning("step failed name=%r ignored=%s reason=%s", name, ignored, reason)
            if not ignored and progress.failure is None:
                progress.failure = {"step": name, "exit_code": outcome.exit_code, "reason": reason}
        if listener is not None:
            listener.step_finished(progress)

    def _start(
        self,
        step: dict,
        argv: list[str] | None,
        stdout: OutputTail,
        stderr: OutputTail,
        timeout_s: float,
        interrupt: threading.Event,
        listener: StepListener | None,
    ) -> ProcessOutcome:
        user = step.get("runAsUser")
        run_as = resolve_user(user) if user else None
        on_started = listener.step_process_started if listener else None

        def run(command: list[str]) -> ProcessOutcome:
            return run_process(command, stdout=stdout, stderr=stderr, timeout_s=timeout_s,
                               interrupt=interrupt, env=self.env, run_as=run_as,
                               on_started=on_started)

        if argv is not None:
            return run(argv)
        if is_agent_download(step) and (self.artifacts is not None
                                        or artifact_reference(step["input"]["args"][0])):
            return self._download(step, stdout, interrupt, listener, run_as)
        step_input = step["input"]
        pinned = pinned_at_execute(step_input)
        handler = self.handlers.resolve(step_input["handler"], step_input.get("path"), pinned)
        require_pinned_content(handler, step_input.get("sha256"))
        if pinned:
            handler, args = as_pinned(handler, step_input["scriptType"]), step_input["args"]
        else:
            args = step_input.get("args") or list(handler.default_args)
        with runnable_by(handler, run_as) as command:
            return run([*command, user or "", *args])

    def _download(
        self, step: dict, stdout: OutputTail, interrupt: threading.Event,
        listener: StepListener | None, owner: RunAs | None,
    ) -> ProcessOutcome:
        """A ``download-file`` step carried out here (``agent.downloads``); without a server
        (``artifacts``), a web address is left to the handler as before."""
        started = time.monotonic()
        if self.artifacts is None:
            return ProcessOutcome(None, 0.0, error="artifacts are downloaded from a server, "
                                                   "and this agent has none")
        on_progress = listener.step_progress if listener is not None else None
        try:
            done = download_step(self.artifacts.downloader, self.artifacts.open_artifact,
                                 step, interrupt, on_progress, owner)
        except DownloadStopped:
            return ProcessOutcome(None, time.monotonic() - started, interrupted=True)
        except DownloadFailed as exc:
            return ProcessOutcome(None, time.monotonic() - started, error=str(exc))
        stdout.write(done.encode() + b"\n")
        return ProcessOutcome(0, time.monotonic() - started)

    def _await_reboot(
        self, name: str, outcome: ProcessOutcome, interrupt: threading.Event
    ) -> ProcessOutcome:
        """A reboot command returned: wait to be stopped by the shutdown it started."""
        log.info("reboot step done, waiting for the system to go down name=%r", name)
        if interrupt.wait(self.settings.reboot_wait_s):
            raise JobInterrupted(f"system going down after step {name!r}")
        return ProcessOutcome(
            None, outcome.duration_s + self.settings.reboot_wait_s,
            error=f"the system did not reboot within {self.settings.reboot_wait_s:g} s",
        )


def _failure_reason(
    step: dict, outcome: ProcessOutcome, timeout_s: float, stderr_lines: int
) -> str | None:
    name = step["name"]
    if outcome.error:
        return f"step {name!r}: {outcome.error}"
    if outcome.timed_out:
        return f"step {name!r} timed out after {timeout_s:g} s; its process group was killed"
    if outcome.exit_code != 0:
        return f"step {name!r} exited with code {outcome.exit_code}"
    allowed = stderr_lines_allowed(step["allowStdErr"])
    if allowed is not None and stderr_lines > allowed:
        if allowed == 0:
            return f"step {name!r} wrote to stderr and allowStdErr is false"
        return (f"step {name!r} wrote {stderr_lines} lines to stderr; allowStdErr allows "
                f"{allowed}")
    return None
