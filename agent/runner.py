"""One job's life on the device: record it, report it, run it, make its result durable.

Order matters for crash safety: the job is recorded in the state directory before any step
runs, and that record is removed only after the final report is in the outbox. Whatever
moment the power goes, the next start finds either the record or the report.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace

from marshmallow import ValidationError

from agent.cancel_watch import CancelWatch, JobControl
from agent.engine import (
    FAILED,
    JobEngine,
    JobInterrupted,
    JobResult,
    Plan,
    Progress,
    load_plan,
    rejection,
)
from agent.recovery import (
    AGENT_RESTARTED,
    reboot_wait_left,
    recovery_plan,
    stop_leftover_step,
)
from agent.reporter import Reporter
from agent.server_api import DeviceApi, ProtocolError
from agent.signatures import JobRefused, OutsideValidity, signed_document
from agent.state import JobState
from schemas.vocabulary import IN_PROGRESS, QUEUED, REJECTED

log = logging.getLogger(__name__)

STATE_UNWRITABLE = "the agent cannot write its state directory"


@dataclass(frozen=True)
class Job:
    job_id: str
    execution_number: int
    job_name: str
    document: object
    status: str = QUEUED
    signature: str | None = None
    signed_job: str | None = None
    parent_job_id: str | None = None

    @classmethod
    def from_answer(cls, body: Mapping) -> Job:
        """The job in a ``jobs/next`` answer; ProtocolError if it is not one."""
        try:
            job_id = str(uuid.UUID(str(body["jobId"])))
            execution_number = int(body.get("executionNumber") or 1)
        except (KeyError, TypeError, ValueError):
            raise ProtocolError(f"jobs/next answer has no usable jobId: {body!r:.200}") from None
        document = body.get("jobDocument")
        if isinstance(document, str):
            # Not JSON: left as text, which the engine rejects with a readable reason.
            with contextlib.suppress(ValueError):
                document = json.loads(document)
        return cls(job_id, execution_number, str(body.get("jobName") or ""), document,
                   str(body.get("status") or QUEUED), body.get("jobDocumentSignature"),
                   body.get("signedJob"), body.get("parentJobId"))

    @classmethod
    def from_record(cls, record: Mapping) -> Job:
        return cls(str(uuid.UUID(record["job_id"])), int(record["execution_number"]),
                   str(record.get("job_name", "")), record.get("document"), IN_PROGRESS)


@dataclass(eq=False)
class JobRunner:
    api: DeviceApi
    engine: JobEngine
    state: JobState
    reporter: Reporter
    cancel_check_s: Callable[[], float]
    signing_public_key: bytes | None = None
    _current: tuple[str, JobControl, CancelWatch] | None = field(default=None, init=False)
    _stopping: bool = field(default=False, init=False)
    _stopped: threading.Event = field(default_factory=threading.Event, init=False)

    def handle(self, job: Job) -> bool:
        """A job the server handed us: run it, unless it ran here already.

        Returns whether anything was done, i.e. whether polling again at once makes sense.
        """
        if self.state.load() is not None:
            self.recover()
        outbox = self.reporter.outbox
        if outbox.has(job.job_id, job.execution_number):
            log.info("job already finished here, delivering its result job_id=%s", job.job_id)
            self.reporter.flush()
            return False
        if outbox.settled(job.job_id, job.execution_number):
            log.error("server handed out a job already finished here; not running it again "
                      "job_id=%s execution_number=%d", job.job_id, job.execution_number)
            return False
        if job.status == IN_PROGRESS:
            # We record every job before reporting it IN_PROGRESS; no record means our state
            # was lost, and the steps may have run already.
            reason = f"{AGENT_RESTARTED}; its local record was lost, so it is not run again"
            self._finish(job, JobResult(FAILED, reason=reason))
            return True
        self.run(job)
        return True

    def run(self, job: Job) -> None:
        """Run a job from its first step (REJECTED when its document is not valid or, with a
        signing key configured, when its signature does not hold here and now; then the
        signed document runs, not the server's copy)."""
        if self.signing_public_key is not None:
            try:
                document = signed_document(
                    job.signed_job, job.signature, self.signing_public_key, job.job_id,
                    job.parent_job_id, self.api.device_uuid, time.time())
            except JobRefused as exc:
                reason = str(exc)
                skew = self.api.clock.looks_off() if isinstance(exc, OutsideValidity) else None
                if skew:
                    reason += (f"; {skew} (by the server's Date header): set this device's time"
                               " (NTP), then retry the job")
                log.error("job refused job_id=%s reason=%s", job.job_id, reason)
                self._finish(job, JobResult(REJECTED, reason=reason))
                return
            job = replace(job, document=document)
        try:
            plan = load_plan(job.document)
        except ValidationError as exc:
            self._finish(job, rejection(exc))
            return
        self._run(job, plan, Progress())

    def recover(self) -> None:
        """Settle a run that an agent restart cut short (see agent.recovery)."""
        record = self.state.load()
        if record is None:
            return
        try:
            job = Job.from_record(record)
        except (KeyError, TypeError, ValueError):
            # Not a record this agent wrote: keep it for a human, never loop on it.
            log.error("job record unreadable, set aside path=%s", self.state.path)
            self.state.set_aside()
            return
        log.warning("found unfinished job job_id=%s", job.job_id)
        if self.reporter.outbox.has(job.job_id, job.execution_number):
            self.state.clear()
            return
        try:
            plan = load_plan(job.document)
        except ValidationError as exc:
            self._finish(job, rejection(exc))
            return
        boot_id = self.state.boot_id()
        reboot_wait_s = self.engine.settings.reboot_wait_s
        wait_s = reboot_wait_left(record, boot_id, reboot_wait_s, time.time())
        if wait_s > 0:
            log.info("reboot step on this same boot; waiting %.0f s more for the system to go "
                     "down job_id=%s", wait_s, job.job_id)
            if self._stopped.wait(wait_s):
                return
        try:
            stop_leftover_step(record, boot_id)
            progress, result = recovery_plan(record, boot_id, len(plan.steps), reboot_wait_s)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            reason = f"{AGENT_RESTARTED} (its progress record was unreadable: {exc!r})"
            progress, result = None, JobResult(FAILED, reason=reason)
        if result is not None:
            log.warning("reporting cut-short job job_id=%s reason=%s", job.job_id, result.reason)
            self._finish(job, result)
        elif progress is not None:
            log.info("resuming job job_id=%s at_step=%d", job.job_id, progress.next_index)
            self._run(job, plan, progress)

    def _run(self, job: Job, plan: Plan, progress: Progress) -> None:
        if self._stopping:
            return
        control = JobControl()
        log.info("job starting job_id=%s name=%r steps=%d", job.job_id, job.job_name,
                 len(plan.steps))
        try:
            self.state.begin(job.job_id, job.execution_number, job.job_name, job.document,
                             progress)
        except OSError as exc:
            self._refuse_unrecorded(job, exc)
            return
        listener = _Listener(self, job, control, len(plan.steps))
        ended_as = self.reporter.progress(job.job_id, listener.progress_body(progress))
        if ended_as is not None:
            self.state.clear()
            return
        watch = CancelWatch(self.api, self.reporter, job.job_id, job.execution_number, control,
                            self.cancel_check_s, lambda: listener.last_body)
        self._current = (job.job_id, control, watch)
        if self._stopping:
            control.stop()
        watch.start()
        try:
            result = self.engine.run(plan, control.interrupt, listener, progress)
        except JobInterrupted:
            result = None
        finally:
            watch.close()
            self._current = None
        if control.ended_as is not None:
            log.info("job stopped, ended on the server job_id=%s status=%s",
                     job.job_id, control.ended_as)
            self.state.clear()
        elif result is None:
            log.warning("agent stopping mid-job; it is settled at the next start job_id=%s",
                        job.job_id)
        else:
            self._finish(job, result)

    def notify_canceled(self, job_id: str) -> None:
        current = self._current
        if current is not None and current[0] == job_id:
            current[2].notify_canceled()

    def stop(self) -> None:
        """Stop the running step now; the job stays recorded for the next start."""
        self._stopping = True
        self._stopped.set()
        current = self._current
        if current is not None:
            current[1].stop()

    def _finish(self, job: Job, result: JobResult) -> None:
        log.info("job finished job_id=%s status=%s reason=%s",
                 job.job_id, result.status, result.reason)
        try:
            self.reporter.submit(job.job_id, job.execution_number, result.report_body())
        except OSError as exc:
            # The outbox cannot be written (disk full, read-only): send the result now. If it
            # does not arrive the record stays, and the job is settled again at the next round.
            log.error("final report cannot be kept job_id=%s error=%s", job.job_id, exc)
            if self.reporter.send_unkept(job.job_id, result.report_body()):
                with contextlib.suppress(OSError):
                    self.state.clear()
            return
        self.state.clear()
        self.reporter.flush()

    def _refuse_unrecorded(self, job: Job, exc: OSError) -> None:
        """A job that cannot be recorded is not run: after a restart mid-step the agent could
        not tell whether its steps had run. It is reported FAILED at once, with the reason; if
        that report is lost, the job is handed out again and refused again, nothing having run.
        """
        reason = (f"{STATE_UNWRITABLE} ({self.state.path.parent}: "
                  f"{exc.strerror or exc}); no step was run")
        log.error("job not run job_id=%s reason=%s", job.job_id, reason)
        self.reporter.send_unkept(job.job_id, JobResult(FAILED, reason=reason).report_body())


class _Listener:
    """Saves progress before and after each step, and reports it after each step."""

    def __init__(self, runner: JobRunner, job: Job, control: JobControl, total_steps: int):
        self._runner = runner
        self._job = job
        self._control = control
        self._total_steps = total_steps
        self.last_body: dict = {}

    def progress_body(self, progress: Progress) -> dict:
        self.last_body = {
            "executed_steps": progress.executed_steps,
            "status_details": {
                "progress": f"{progress.executed_steps}/{self._total_steps}",
                "total_steps": self._total_steps, "steps": list(progress.steps),
            },
        }
        return self.last_body

    def step_starting(self, progress: Progress, step: dict, reboot: bool) -> None:
        self._runner.state.step_starting(progress, step, reboot)

    def step_process_started(self, pid: int) -> None:
        self._runner.state.step_process_started(pid)

    def step_progress(self, details: dict) -> None:
        """A download's progress, reported beside the steps' (the same IN_PROGRESS report)."""
        body = {**self.last_body, "status_details": {
            **self.last_body.get("status_details", {}), "download": details}}
        ended_as = self._runner.reporter.progress(self._job.job_id, body)
        if ended_as is not None:
            self._control.end(ended_as)

    def step_finished(self, progress: Progress) -> None:
        self._runner.state.step_finished(progress)
        ended_as = self._runner.reporter.progress(self._job.job_id, self.progress_body(progress))
        if ended_as is not None:
            self._control.end(ended_as)
