"""The standard handlers and templates: installed by ``dispatcher migrate`` as ordinary ones,
created when missing and never written over."""

from __future__ import annotations

import logging

import pytest

from dispatcher.catalog.standard.library import standard_handlers, standard_templates
from dispatcher_cli import main

HANDLERS = "/api/v1/jobs/handlers"
TEMPLATES = "/api/v1/jobs/templates"
STANDARD_HANDLERS = {
    "download-file", "install-packages", "remove-packages", "verify-packages-installed",
    "verify-packages-removed", "start-services", "stop-services", "restart-services", "reboot",
    "shutdown", "health-check",
}
STANDARD_TEMPLATES = {"reboot", "download-file", "install-packages", "remove-packages",
                      "restart-services", "run-command"}


@pytest.fixture
def migrate_cli(settings, monkeypatch, capsys):
    monkeypatch.setenv("DATABASE_URL", settings.database_url)
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level

    def run() -> str:
        assert main(["migrate"]) == 0
        return capsys.readouterr().out

    yield run
    root.handlers[:] = handlers
    root.setLevel(level)


def handler_sha256(client, headers, name: str) -> str:
    return client.get(f"/api/v1/jobs/handlers/{name}", headers=headers).get_json()["script_sha256"]


def test_the_library_ships_every_handler_and_template_the_guide_needs():
    assert {h["name"] for h in standard_handlers()} == STANDARD_HANDLERS
    assert {t["name"] for t in standard_templates(32 * 1024)} == STANDARD_TEMPLATES
    for handler in standard_handlers():
        assert handler["script_content"].startswith("#!/bin/sh\n")
        assert handler["description"][:1].isupper(), handler
        assert not handler["description"].startswith(handler["name"] + ":")


def test_migrate_installs_them_as_ordinary_handlers_and_templates(migrate_cli, client,
                                                                  admin_headers):
    out = migrate_cli()
    assert "standard handlers created: download-file" in out
    listed = client.get(f"{HANDLERS}?limit=100", headers=admin_headers).get_json()
    assert {h["name"] for h in listed["handlers"]} == STANDARD_HANDLERS
    one = client.get(f"{HANDLERS}/download-file", headers=admin_headers).get_json()
    assert (one["script_type"], one["permissions"], one["created_by"]) == (
        "bash", "700", "dispatcher migrate")
    templates = client.get(f"{TEMPLATES}?limit=100", headers=admin_headers).get_json()
    by_name = {t["name"]: t for t in templates["templates"]}
    assert set(by_name) == STANDARD_TEMPLATES
    assert by_name["download-file"]["parameters"] == {
        "URL": None, "DESTINATION": None, "SHA256": ""}
    assert by_name["run-command"]["job_document"]["steps"][0]["input"]["command"] == (
        "sh,-c,{{COMMAND}}")
    assert "none (all present)" in migrate_cli()  # a second run creates nothing


def test_an_operator_s_edit_is_never_overwritten_and_a_deleted_one_comes_back(
    migrate_cli, client, admin_headers
):
    migrate_cli()
    edited = "#!/bin/sh\necho our own reboot\n"
    response = client.put(f"{HANDLERS}/reboot", json={"script_content": edited},
                          headers=admin_headers)
    assert response.status_code == 200, response.get_json()
    templates = client.get(f"{TEMPLATES}?limit=100", headers=admin_headers).get_json()
    run_command = next(t for t in templates["templates"] if t["name"] == "run-command")
    assert client.delete(f"{TEMPLATES}/{run_command['id']}",
                         headers=admin_headers).status_code in (200, 204)
    assert client.delete(f"{HANDLERS}/health-check", headers=admin_headers).status_code in (
        200, 204)
    out = migrate_cli()
    assert "standard handlers created: health-check\n" in out
    assert "standard templates created: run-command\n" in out
    reboot = client.get(f"{HANDLERS}/reboot", headers=admin_headers).get_json()
    assert reboot["script_content"] == edited


def test_a_standard_template_executes_with_its_parameters(migrate_cli, client, admin_headers):
    migrate_cli()
    device = client.post("/api/v1/devices", json={"device_name": "pi", "device_type": "pi"},
                         headers=admin_headers).get_json()
    templates = client.get(f"{TEMPLATES}?limit=100", headers=admin_headers).get_json()
    download = next(t for t in templates["templates"] if t["name"] == "download-file")
    response = client.post("/api/v1/jobs/execute", json={
        "job_name": "fetch", "template_id": download["id"], "target_type": "device",
        "target_devices": [device["uuid"]],
        "parameters": {"URL": "https://example.com/a", "DESTINATION": "/tmp/a"},
    }, headers=admin_headers)
    assert response.status_code == 201, response.get_json()
    job_id = response.get_json()["job"]["job_id"]
    detail = client.get(f"/api/v1/jobs/executions/{job_id}", headers=admin_headers).get_json()
    step = detail["job"]["job_document"]["steps"][0]
    assert step["input"] == {"handler": "download-file",
                             "args": ["https://example.com/a", "/tmp/a", ""],
                             "sha256": handler_sha256(client, admin_headers, "download-file"),
                             "scriptType": "bash"}
    missing = client.post("/api/v1/jobs/execute", json={
        "job_name": "fetch", "template_id": download["id"], "target_type": "device",
        "target_devices": [device["uuid"]], "parameters": {"URL": "https://example.com/a"},
    }, headers=admin_headers)
    assert missing.status_code == 400
    assert "DESTINATION" in missing.get_json()["errors"]["parameters"]
