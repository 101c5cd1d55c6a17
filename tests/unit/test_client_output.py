"""The client's pure parts: tables fitting a width, error bodies flattened to one line, how a
watch's exit code follows the jobs' statuses, where the URL and token come from."""

from __future__ import annotations

import pytest

from client.config import resolve, write_config
from client.errors import ApiError, NotConfigured
from client.output import column, table
from client.watch import EXIT_CANCELED, EXIT_FAILED, EXIT_SUCCEEDED, EXIT_WATCH_TIMEOUT, exit_code

ROWS = [{"id": "5f0c1d7e-2b1a-4d8e-9c77-0a1b2c3d4e5f", "name": "restart-nginx-on-the-fleet",
         "details": {"from": "a" * 80, "to": "b"}}]
COLUMNS = [column("ID", "id"), column("NAME", "name"), column("DETAILS", "details")]


@pytest.mark.parametrize("width", [40, 60, 100])
def test_a_table_fits_the_width_by_cutting_its_widest_columns(width):
    lines = table(ROWS, COLUMNS, width).splitlines()
    assert all(len(line) <= width for line in lines)
    assert lines[0].startswith("ID") and "…" in lines[1]


def test_a_table_that_fits_is_not_cut():
    text = table([{"id": 1, "name": "x", "details": None}], COLUMNS, 80)
    assert text.splitlines() == ["ID  NAME  DETAILS", "1   x     -"]


def test_field_errors_are_flattened_into_one_line():
    error = ApiError(400, "Invalid request: rollout_config", {
        "rollout_config": {"maximum_per_minute": ["Must be at least 1."]},
        "job_name": ["Missing.", "Too short."]})
    assert error.field_errors == [("rollout_config.maximum_per_minute", "Must be at least 1."),
                                  ("job_name", "Missing. Too short.")]
    assert str(error) == ("400 Invalid request: rollout_config (rollout_config.maximum_per_minute:"
                          " Must be at least 1.; job_name: Missing. Too short.)")


def test_a_watch_exits_zero_only_when_every_job_succeeded():
    assert exit_code(["SUCCEEDED", "SUCCEEDED"]) == EXIT_SUCCEEDED
    assert exit_code(["SUCCEEDED", "CANCELED", "FAILED"]) == EXIT_FAILED
    assert exit_code(["SUCCEEDED", "CANCELED"]) == EXIT_CANCELED
    assert len({EXIT_SUCCEEDED, EXIT_FAILED, EXIT_CANCELED, EXIT_WATCH_TIMEOUT}) == 4


def test_flags_win_over_the_environment_which_wins_over_the_file(tmp_path, monkeypatch):
    config = tmp_path / "config.json"
    write_config(config, "http://from-file", "file-token")
    assert config.stat().st_mode & 0o777 == 0o600
    monkeypatch.setenv("DEVICE_JOBS_CONFIG", str(config))
    monkeypatch.delenv("DEVICE_JOBS_URL", raising=False)
    monkeypatch.delenv("DEVICE_JOBS_TOKEN", raising=False)
    assert resolve() == resolve(None, None)
    assert (resolve().url, resolve().token) == ("http://from-file", "file-token")
    monkeypatch.setenv("DEVICE_JOBS_URL", "http://from-env/")
    assert (resolve().url, resolve().token) == ("http://from-env", "file-token")
    assert resolve("http://flag", "flag-token").token == "flag-token"
    config.unlink()
    monkeypatch.delenv("DEVICE_JOBS_URL")
    with pytest.raises(NotConfigured, match="no API URL"):
        resolve()


def test_the_client_imports_only_itself_the_standard_library_and_schemas_without_marshmallow():
    import ast
    import sys
    from pathlib import Path

    import client

    allowed = {"client", "schemas.vocabulary", "schemas.command_line", "__future__"}
    for path in Path(client.__file__).parent.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            for name in names:
                top = name.partition(".")[0]
                assert (name in allowed or top == "client"
                        or top in sys.stdlib_module_names), f"{path} imports {name}"
