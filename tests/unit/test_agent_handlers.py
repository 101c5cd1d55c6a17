"""Handlers fetched from a (local stand-in) server: verified against sha256, cached mode 700."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
import threading
from pathlib import Path

import pytest
from agent_fakes import DEVICE_UUID, TOKEN, fake_server

from agent.engine import FAILED, SUCCEEDED, EngineSettings, JobEngine
from agent.handlers import DEFAULT_PATH, HandlerStore
from agent.process import StepSetupError
from agent.server_api import DeviceApi

SCRIPT = '#!/bin/bash\necho "user=[$1] db=$2"\n'


def handler_body(content: str = SCRIPT, sha256: str | None = None) -> dict:
    return {
        "name": "backup-database", "script_type": "bash", "script_content": content,
        "script_sha256": sha256 or hashlib.sha256(content.encode()).hexdigest(),
        "permissions": "700", "default_args": ["myapp"],
    }


@pytest.fixture
def fake():
    with fake_server() as server:
        yield server


def store(fake, tmp_path: Path) -> HandlerStore:
    api = DeviceApi(fake.url, DEVICE_UUID, TOKEN)
    return HandlerStore(tmp_path / "handlers", tmp_path / "cache", api)


def run_handler(handlers: HandlerStore, args: list[str] | None = None):
    step = {"name": "Backup", "type": "runHandler",
            "input": {"handler": "backup-database", "args": args or []}}
    engine = JobEngine(EngineSettings(), handlers)
    doc = {"version": "1.0", "includeStdOut": True, "steps": [step]}
    return engine.run_document(doc, threading.Event())


def test_a_fetched_handler_is_verified_cached_mode_700_and_gets_its_default_args(fake, tmp_path):
    fake.handlers["backup-database"] = handler_body()
    result = run_handler(store(fake, tmp_path))
    assert result.status == SUCCEEDED, result.reason
    assert result.stdout == "user=[] db=myapp\n"  # the seed's handler reads its argument as $2
    cached = tmp_path / "cache" / "scripts" / "backup-database"
    assert cached.read_text() == SCRIPT
    assert stat.S_IMODE(os.stat(cached).st_mode) == 0o700
    assert stat.S_IMODE(os.stat(tmp_path / "cache").st_mode) == 0o700
    assert run_handler(store(fake, tmp_path), ["otherdb"]).stdout == "user=[] db=otherdb\n"


def test_a_handler_whose_content_does_not_match_its_sha256_is_refused(fake, tmp_path):
    fake.handlers["backup-database"] = handler_body(sha256=hashlib.sha256(b"other").hexdigest())
    result = run_handler(store(fake, tmp_path))
    assert result.status == FAILED
    assert "does not match its sha256" in result.reason
    assert not (tmp_path / "cache" / "scripts" / "backup-database").exists()


def test_the_cache_serves_while_the_server_is_down_unless_it_was_tampered_with(fake, tmp_path):
    fake.handlers["backup-database"] = handler_body()
    handlers = store(fake, tmp_path)
    handlers.resolve("backup-database")
    fake.down = True
    assert run_handler(handlers).stdout == "user=[] db=myapp\n"
    (tmp_path / "cache" / "scripts" / "backup-database").write_text("#!/bin/bash\nrm -rf /x\n")
    with pytest.raises(StepSetupError, match="no cached copy"):
        handlers.resolve("backup-database")


def test_a_handler_named_like_metadata_cannot_change_another_handlers_cached_defaults(
        fake, tmp_path):
    fake.handlers["backup-database"] = handler_body()
    handlers = store(fake, tmp_path)
    handlers.resolve("backup-database")
    forged = json.dumps({"script_sha256": hashlib.sha256(SCRIPT.encode()).hexdigest(),
                         "script_type": "bash", "default_args": ["injected"]})
    fake.handlers["backup-database.meta.json"] = {
        **handler_body(forged), "name": "backup-database.meta.json"}
    handlers.resolve("backup-database.meta.json")
    fake.down = True
    assert run_handler(handlers).stdout == "user=[] db=myapp\n"


def test_an_unknown_handler_is_a_clear_step_failure(fake, tmp_path):
    with pytest.raises(StepSetupError, match="not found; looked in .*the server, PATH"):
        store(fake, tmp_path).resolve("nothing")


def test_a_local_handler_wins_over_the_server(fake, tmp_path):
    fake.handlers["backup-database"] = handler_body()
    local = tmp_path / "handlers" / "backup-database"
    local.parent.mkdir()
    local.write_text("#!/bin/sh\necho local\n")
    local.chmod(0o700)
    assert run_handler(store(fake, tmp_path)).stdout == "local\n"


def local_script(directory: Path, name: str, body: str = "echo local\n", mode: int = 0o700):
    directory.mkdir(parents=True, exist_ok=True)
    script = directory / name
    script.write_text("#!/bin/sh\n" + body)
    script.chmod(mode)
    return script


def test_x_sh_and_x_name_the_same_handler_when_only_one_exists(fake, tmp_path):
    handlers = store(fake, tmp_path)
    local_script(tmp_path / "handlers", "greet")
    assert handlers.resolve("greet.sh").script == str(tmp_path / "handlers" / "greet")
    local_script(tmp_path / "handlers", "greet.sh")
    assert handlers.resolve("greet.sh").script == str(tmp_path / "handlers" / "greet.sh")
    assert handlers.resolve("greet").script == str(tmp_path / "handlers" / "greet")
    fake.handlers["reboot"] = handler_body()
    assert handlers.resolve("reboot.sh").script == str(tmp_path / "cache" / "scripts" / "reboot")
    fake.handlers["tidy.sh"] = handler_body()
    assert handlers.resolve("tidy", DEFAULT_PATH).script == str(
        tmp_path / "cache" / "scripts" / "tidy.sh")


def test_without_a_path_the_server_comes_before_path_and_path_runs_an_executable(fake, tmp_path):
    handlers = store(fake, tmp_path)
    assert handlers.resolve("echo").argv == (shutil.which("echo"),)
    fake.handlers["echo"] = handler_body()
    assert handlers.resolve("echo").script == str(tmp_path / "cache" / "scripts" / "echo")


def test_default_path_never_falls_through_to_path(fake, tmp_path):
    with pytest.raises(StepSetupError, match="not found"):
        store(fake, tmp_path).resolve("echo", DEFAULT_PATH)


def test_an_unreachable_server_does_not_fall_through_to_path(fake, tmp_path):
    fake.down = True
    with pytest.raises(StepSetupError, match="server unreachable"):
        store(fake, tmp_path).resolve("reboot")


def test_allow_local_handlers_off_runs_server_handlers_only(fake, tmp_path):
    api = DeviceApi(fake.url, DEVICE_UUID, TOKEN)
    handlers = HandlerStore(tmp_path / "handlers", tmp_path / "cache", api, allow_local=False)
    local_script(tmp_path / "handlers", "backup-database")
    local_script(tmp_path / "elsewhere", "x.sh")
    with pytest.raises(StepSetupError, match="not found"):
        handlers.resolve("echo")
    with pytest.raises(StepSetupError, match="allow_local_handlers is off"):
        handlers.resolve("x.sh", str(tmp_path / "elsewhere"))
    fake.handlers["backup-database"] = handler_body()
    assert handlers.resolve("backup-database").script == str(
        tmp_path / "cache" / "scripts" / "backup-database")


@pytest.mark.parametrize("problem", ["file-writable", "dir-writable", "file-symlink",
                                     "dir-symlink", "file-owner", "relative"])
def test_a_path_handler_anyone_else_could_change_is_refused(fake, tmp_path, problem):
    directory = tmp_path / "opt" / "handlers"
    script = local_script(directory, "x.sh")
    path = str(directory)
    if problem == "file-writable":
        script.chmod(0o722)
    elif problem == "dir-writable":
        directory.chmod(0o777)
    elif problem == "file-symlink":
        script.rename(directory / "real.sh")
        script.symlink_to(directory / "real.sh")
    elif problem == "dir-symlink":
        (tmp_path / "link").symlink_to(directory)
        path = str(tmp_path / "link")
    elif problem == "file-owner":
        if os.geteuid() != 0:
            pytest.skip("changing a file's owner needs root")
        os.chown(script, 12345, 12345)
    else:
        path = "opt/handlers"
    with pytest.raises(StepSetupError, match="refused|absolute"):
        store(fake, tmp_path).resolve("x.sh", path)


def test_a_path_handler_in_a_trusted_directory_runs(fake, tmp_path):
    script = local_script(tmp_path / "opt" / "handlers", "x.sh")
    assert store(fake, tmp_path).resolve("x", str(script.parent)).script == str(script)
