"""Handlers fetched from a (local stand-in) server: verified against sha256, cached mode 700."""

from __future__ import annotations

import hashlib
import json
import os
import stat
import threading
from pathlib import Path

import pytest
from agent_fakes import DEVICE_UUID, TOKEN, fake_server

from agent.client import DeviceApi
from agent.engine import FAILED, SUCCEEDED, EngineSettings, JobEngine
from agent.handlers import HandlerStore
from agent.process import StepSetupError

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
    with pytest.raises(StepSetupError, match="not found on the server"):
        store(fake, tmp_path).resolve("nothing")


def test_a_local_handler_wins_over_the_server(fake, tmp_path):
    fake.handlers["backup-database"] = handler_body()
    local = tmp_path / "handlers" / "backup-database"
    local.parent.mkdir()
    local.write_text("#!/bin/sh\necho local\n")
    local.chmod(0o700)
    assert run_handler(store(fake, tmp_path)).stdout == "local\n"
