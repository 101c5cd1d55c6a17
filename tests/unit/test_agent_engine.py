"""The job engine on real processes and real files: every document feature, good and bad."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest

from agent.engine import (
    FAILED,
    REJECTED,
    SUCCEEDED,
    EngineSettings,
    JobEngine,
    JobInterrupted,
    is_reboot_command,
    step_environment,
)
from agent.handlers import HandlerStore

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="dropping privileges needs root")


@pytest.fixture
def engine(tmp_path: Path) -> JobEngine:
    return make_engine(tmp_path)


def make_engine(tmp_path: Path, **settings) -> JobEngine:
    handlers = HandlerStore(tmp_path / "handlers", tmp_path / "cache")
    return JobEngine(EngineSettings(**settings), handlers)


def command(name: str, cmd: str, **extra) -> dict:
    return {"name": name, "type": "runCommand", "input": {"command": cmd}, **extra}


def document(*steps: dict, **extra) -> dict:
    return {"version": "1.0", "steps": list(steps), **extra}


def run(engine: JobEngine, doc: object, interrupt: threading.Event | None = None):
    return engine.run_document(doc, interrupt or threading.Event())


def test_commands_run_without_a_shell_and_escaped_commas_stay_in_one_argument(engine, tmp_path):
    out = tmp_path / "out"
    doc = document(
        command("write", f"python3,-c,import sys; open('{out}'\\, 'w').write(sys.argv[1]),"
                         "$HOME; rm -rf / `x`"),
        includeStdOut=True,
    )
    result = run(engine, doc)
    assert result.status == SUCCEEDED, result.reason
    assert out.read_text() == "$HOME; rm -rf / `x`"
    assert result.executed_steps == 1
    assert result.exit_code == 0


def test_stdout_is_reported_only_when_the_document_asks_for_it(engine):
    steps = [command("say", "echo,hello")]
    assert run(engine, document(*steps, includeStdOut=True)).stdout == "hello\n"
    assert run(engine, document(*steps)).report_body().get("stdout") is None


def test_a_failing_step_stops_the_job_and_the_final_step_still_runs(engine, tmp_path):
    never, cleaned = tmp_path / "never", tmp_path / "cleaned"
    doc = document(
        command("ok", "true"),
        command("Restart Service", "sh,-c,echo Permission denied >&2; exit 4"),
        command("after", f"touch,{never}"),
        finalStep=command("cleanup", f"touch,{cleaned}"),
    )
    body = run(engine, doc).report_body()
    assert body["status"] == FAILED
    assert body["exit_code"] == 4
    assert body["failed_step"] == "Restart Service"
    assert body["executed_steps"] == 3  # ok, the failing step, the final step
    assert body["stderr"] == "Permission denied\n"
    assert "exited with code 4" in body["reason"]
    assert not never.exists()
    assert cleaned.exists()
    outcomes = [s["outcome"] for s in body["status_details"]["steps"]]
    assert outcomes == ["succeeded", "failed", "succeeded"]


def test_a_failing_final_step_fails_the_job(engine):
    result = run(engine, document(command("ok", "true"), finalStep=command("cleanup", "false")))
    assert result.status == FAILED
    assert result.failed_step == "cleanup"


def test_ignore_step_failure_goes_on_and_succeeds(engine, tmp_path):
    after = tmp_path / "after"
    doc = document(
        command("may fail", "false", ignoreStepFailure="true"),
        command("after", f"touch,{after}"),
    )
    result = run(engine, doc)
    assert result.status == SUCCEEDED
    assert after.exists()
    assert result.status_details["steps"][0]["outcome"] == "failed (ignored)"


def test_writing_to_stderr_fails_a_step_unless_allow_std_err(engine):
    noisy = "sh,-c,echo warning >&2"
    refused = run(engine, document(command("noisy", noisy)))
    assert refused.status == FAILED
    assert "allowStdErr" in refused.reason
    allowed = run(engine, document(command("noisy", noisy, allowStdErr=True)))
    assert allowed.status == SUCCEEDED
    assert allowed.stderr == "warning\n"


@pytest.mark.parametrize(("allow", "script", "status"), [
    (2, "echo a >&2; echo b >&2", SUCCEEDED),
    (2, "printf 'a\\nb\\nc' >&2", FAILED),  # the unterminated last line counts
    (1, "echo a >&2; echo b >&2", FAILED),
    (0, "echo a >&2", FAILED),
    (0, "true", SUCCEEDED),
    (5, "echo a >&2; exit 3", FAILED),
])
def test_allow_std_err_as_a_number_counts_the_step_s_stderr_lines(engine, allow, script, status):
    result = run(engine, document(command("noisy", f"sh,-c,{script}", allowStdErr=allow)))
    assert result.status == status, result.reason
    if status == FAILED and "exit" not in script:
        assert "stderr" in result.reason


def test_stderr_lines_of_an_earlier_step_do_not_count_against_the_next(engine):
    result = run(engine, document(
        command("first", "sh,-c,echo one >&2; echo two >&2", allowStdErr=True),
        command("second", "sh,-c,echo three >&2", allowStdErr=1),
    ))
    assert result.status == SUCCEEDED, result.reason


def test_aws_style_action_documents_with_string_booleans_run(engine, tmp_path):
    marker = tmp_path / "aws"
    doc = {
        "version": "1.0",
        "includeStdOut": "true",
        "steps": [
            {"action": {"name": "Touch", "type": "runCommand", "ignoreStepFailure": "false",
                        "allowStdErr": "false", "input": {"command": f"touch,{marker}"}}},
            {"action": {"name": "Echo", "type": "runCommand", "input": {"command": "echo,aws"}}},
        ],
        "finalStep": {"action": {"name": "Final", "type": "runCommand",
                                 "input": {"command": "echo,done"}}},
    }
    result = run(engine, doc)
    assert result.status == SUCCEEDED, result.reason
    assert marker.exists()
    assert result.stdout == "aws\ndone\n"


@pytest.mark.parametrize(
    ("doc", "named"),
    [
        ({"version": "2.0", "steps": [command("a", "true")]}, "version"),
        ({"version": "1.0", "steps": []}, "steps"),
        ({"version": "1.0", "steps": [{"name": "x", "type": "runShell", "input": {}}]},
         "steps.0.type"),
        ({"version": "1.0", "steps": [{"name": "x", "type": "runCommand", "input": {}}]},
         "steps.0.input.command"),
        ({"version": "1.0", "steps": [{"action": {"name": "x", "type": "runHandler",
                                                  "input": {"handler": "../etc/passwd"}}}]},
         "steps.0.action.input.handler"),
        ({"version": "1.0", "steps": [command("a", "true", ignoreStepFailure="yes")]},
         "steps.0.ignoreStepFailure"),
        ("not a document", "Must be a job document object"),
        ({"version": "1.0", "steps": [command("big", "echo," + "x" * 40_000)]}, "limit"),
    ],
)
def test_invalid_documents_are_rejected_naming_the_problem(engine, doc, named):
    result = run(engine, doc)
    assert result.status == REJECTED
    assert named in result.reason
    assert result.executed_steps == 0


def test_a_missing_program_fails_with_127(engine):
    result = run(engine, document(command("ghost", "/nonexistent/program")))
    assert result.status == FAILED
    assert result.exit_code == 127
    assert "command not found" in result.reason


@needs_root
def test_run_as_user_drops_privileges(engine):
    result = run(engine, document(command("who", "id,-un", runAsUser="nobody"), includeStdOut=True))
    assert result.status == SUCCEEDED, result.reason
    assert result.stdout == "nobody\n"


def test_run_as_a_user_that_does_not_exist_fails_clearly_and_runs_nothing(engine, tmp_path):
    marker = tmp_path / "ran"
    result = run(engine, document(command("touch", f"touch,{marker}", runAsUser="no-such-user")))
    assert result.status == FAILED
    assert result.failed_step == "touch"
    assert "user 'no-such-user' does not exist" in result.reason
    assert not marker.exists()


def _processes_with(marker: str) -> list[int]:
    """Live (non-zombie) processes whose command line contains ``marker``."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if marker in cmdline and state != "Z":
            pids.append(int(entry.name))
    return pids


def test_a_step_timeout_kills_the_whole_process_group(engine):
    marker = "987.654"  # a sleep duration no other process uses
    step = command("hang", f"sh,-c,sleep {marker} & sleep {marker}", timeoutSeconds=1)
    started = time.monotonic()
    result = run(engine, document(step))
    assert time.monotonic() - started < 8
    assert result.status == FAILED
    assert "timed out after 1 s" in result.reason
    assert result.exit_code == 128 + 15  # SIGTERM
    deadline = time.monotonic() + 5
    while _processes_with(marker) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _processes_with(marker) == []


def test_the_agent_default_step_timeout_applies(tmp_path):
    engine = make_engine(tmp_path, step_timeout_s=0.5)
    result = run(engine, document(command("slow", "sleep,30")))
    assert result.status == FAILED
    assert "timed out" in result.reason


def test_output_is_kept_as_a_bounded_tail(tmp_path):
    engine = make_engine(tmp_path, output_cap_bytes=4096)
    noisy = "python3,-c,import sys; [sys.stdout.write('%07d\\n' % i) for i in range(500000)]"
    result = run(engine, document(command("noisy", noisy), includeStdOut=True))
    assert result.status == SUCCEEDED
    assert len(result.stdout.encode()) == 4096
    assert result.stdout.endswith("0499999\n")
    assert result.status_details["stdout_truncated"] is True


def test_interrupt_stops_the_running_step_and_the_job(engine, tmp_path):
    after = tmp_path / "after"
    interrupt = threading.Event()
    threading.Timer(0.5, interrupt.set).start()
    started = time.monotonic()
    with pytest.raises(JobInterrupted):
        run(engine, document(command("long", "sleep,60"), command("after", f"touch,{after}")),
            interrupt)
    assert time.monotonic() - started < 5
    assert not after.exists()


def _write_handler(directory: Path, name: str, body: str, mode: int = 0o700) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    script = directory / name
    script.write_text("#!/bin/sh\n" + body)
    script.chmod(mode)
    return script


def test_run_handler_from_the_handler_dir_gets_the_user_then_the_args(engine, tmp_path):
    _write_handler(tmp_path / "handlers", "greet.sh", 'echo "user=[$1] args=$2,$3"\n')
    step = {"name": "greet", "type": "runHandler",
            "input": {"handler": "greet.sh", "args": ["a b", "c"]}}
    result = run(engine, document(step, includeStdOut=True))
    assert result.status == SUCCEEDED, result.reason
    assert result.stdout == "user=[] args=a b,c\n"


def test_run_handler_path_names_another_directory(engine, tmp_path):
    _write_handler(tmp_path / "elsewhere", "where.sh", "echo elsewhere\n")
    step = {"name": "w", "type": "runHandler",
            "input": {"handler": "where.sh", "path": str(tmp_path / "elsewhere")}}
    assert run(engine, document(step, includeStdOut=True)).stdout == "elsewhere\n"
    missing = {"name": "w", "type": "runHandler",
               "input": {"handler": "where.sh", "path": str(tmp_path / "nowhere")}}
    result = run(engine, document(missing))
    assert result.status == FAILED
    assert "not found" in result.reason


@needs_root
def test_a_handler_others_can_write_is_refused(engine, tmp_path):
    _write_handler(tmp_path / "handlers", "open.sh", "echo hi\n", mode=0o777)
    step = {"name": "open", "type": "runHandler", "input": {"handler": "open.sh"}}
    result = run(engine, document(step))
    assert result.status == FAILED
    assert "not writable by group or others" in result.reason


@needs_root
def test_a_handler_runs_as_another_user_from_a_private_copy(engine, tmp_path):
    _write_handler(tmp_path / "handlers", "who.sh", 'echo "$1 $(id -un)"\n')
    step = {"name": "who", "type": "runHandler", "input": {"handler": "who.sh"},
            "runAsUser": "nobody"}
    result = run(engine, document(step, includeStdOut=True))
    assert result.status == SUCCEEDED, result.reason
    assert result.stdout == "nobody nobody\n"


def test_an_unknown_handler_without_a_server_fails_the_step(engine):
    step = {"name": "x", "type": "runHandler", "input": {"handler": "nothing.sh"}}
    result = run(engine, document(step))
    assert result.status == FAILED
    assert "none configured" in result.reason


@pytest.mark.parametrize(
    ("argv", "reboot"),
    [
        (["reboot"], True), (["/sbin/reboot", "-f"], True), (["shutdown", "-r", "now"], True),
        (["shutdown", "--reboot", "+1"], True), (["shutdown", "-h", "now"], False),
        (["systemctl", "reboot"], True), (["systemctl", "restart", "nginx"], False),
        (["init", "6"], True), (["echo", "reboot"], False),
    ],
)
def test_reboot_commands_are_recognised(argv, reboot):
    assert is_reboot_command(argv) is reboot


def test_a_reboot_that_does_not_take_the_system_down_fails_the_step(tmp_path):
    fake = _write_handler(tmp_path / "bin", "reboot", "exit 0\n")
    engine = make_engine(tmp_path, reboot_wait_s=0.3)
    result = run(engine, document(command("Reboot", str(fake))))
    assert result.status == FAILED
    assert "did not reboot within 0.3 s" in result.reason


def test_a_reboot_step_waits_for_the_shutdown_to_stop_the_agent(tmp_path):
    fake = _write_handler(tmp_path / "bin", "reboot", "exit 0\n")
    engine = make_engine(tmp_path, reboot_wait_s=30)
    interrupt = threading.Event()
    threading.Timer(0.5, interrupt.set).start()
    with pytest.raises(JobInterrupted):
        run(engine, document(command("Reboot", str(fake)), command("after", "true")), interrupt)


def test_steps_never_see_the_agent_settings_or_token():
    env = step_environment({"PATH": "/bin", "JOBS_AGENT_TOKEN": "secret", "LANG": "C"})
    assert env == {"PATH": "/bin", "LANG": "C"}
