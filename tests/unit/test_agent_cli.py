"""`jobs-agent run-document`: run one document here, print the result, exit 0 or 1."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path


def run_document(tmp_path: Path, document: object, *args: str) -> subprocess.CompletedProcess:
    source = tmp_path / "doc.json"
    source.write_text(document if isinstance(document, str) else json.dumps(document))
    return subprocess.run(
        [sys.executable, "-m", "agent", "run-document", str(source),
         "--state-dir", str(tmp_path / "state"), "--handler-dir", str(tmp_path / "h"), *args],
        capture_output=True, text=True, timeout=60, env={"PATH": "/usr/bin:/bin"},
    )


def test_a_succeeding_document_prints_its_result_and_exits_0(tmp_path):
    result = run_document(tmp_path, {"version": "1.0", "includeStdOut": True, "steps": [
        {"name": "Hello", "type": "runCommand", "input": {"command": "echo,hello"}}]})
    assert result.returncode == 0, result.stderr
    body = json.loads(result.stdout)
    assert (body["status"], body["stdout"], body["executed_steps"]) == ("SUCCEEDED", "hello\n", 1)


def test_a_failing_document_exits_1_with_the_failed_step(tmp_path):
    result = run_document(tmp_path, {"version": "1.0", "steps": [
        {"name": "Nope", "type": "runCommand", "input": {"command": "false"}}]})
    assert result.returncode == 1
    body = json.loads(result.stdout)
    assert (body["status"], body["failed_step"], body["exit_code"]) == ("FAILED", "Nope", 1)


def test_a_file_that_is_not_json_is_rejected_with_exit_1(tmp_path):
    result = run_document(tmp_path, "{not json")
    assert result.returncode == 1
    body = json.loads(result.stdout)
    assert body["status"] == "REJECTED" and "not JSON" in body["reason"]


def test_a_document_can_come_from_stdin(tmp_path):
    doc = {"version": "1.0", "includeStdOut": True, "steps": [
        {"name": "Hi", "type": "runCommand", "input": {"command": "echo,from stdin"}}]}
    result = subprocess.run([sys.executable, "-m", "agent", "run-document", "-",
                             "--state-dir", str(tmp_path)], input=json.dumps(doc),
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["stdout"] == "from stdin\n"


def test_a_missing_file_is_a_usage_error(tmp_path):
    result = subprocess.run([sys.executable, "-m", "agent", "run-document",
                             str(tmp_path / "none.json")], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 2
    assert "cannot read" in result.stderr
