"""``jobs-agent enroll`` against the real API: it writes a config and a token file (mode 600)
the agent runs with; the same hardware keeps its identity; a refused token writes nothing.
And the server hands out the agent's package, so a device needs only the server's URL."""

from __future__ import annotations

import hashlib
import json
import stat
from dataclasses import replace

from agent_processes import run_enroll
from json_http import JsonHttp
from operator_cli import operator_env, run
from processes import free_port
from suite_constants import TEST_ADMIN_TOKEN

from agent.config import load_config
from agent.server_api import DeviceApi
from api.app import create_app

ADMIN = {"Authorization": f"Bearer {TEST_ADMIN_TOKEN}"}


def enrollment_token(api_url: str, **body) -> str:
    status, answer = JsonHttp(api_url).request(
        "POST", "/api/v1/enrollment-tokens", {"name": "bench", **body}, ADMIN)
    assert status == 201, answer
    return answer["enrollment_token"]


def test_enroll_writes_private_files_the_agent_polls_with(api_server, tmp_path):
    token = enrollment_token(api_server.url)
    done = run_enroll(api_server.url, token, tmp_path, "--name", "pi-kitchen")
    assert done.returncode == 0, done.stderr
    assert "enrolled as pi-kitchen" in done.stdout
    for name in ("agent.conf", "token"):
        assert stat.S_IMODE((tmp_path / "etc" / name).stat().st_mode) == 0o600
    config = load_config({}, environ={}, config_file=str(tmp_path / "etc" / "agent.conf"))
    answer = DeviceApi(config.server_url, config.device_uuid, config.token).next_job()
    assert answer.status == 200, answer.body

    again = run_enroll(api_server.url, token, tmp_path)
    assert again.returncode == 0, again.stderr
    second = load_config({}, environ={}, config_file=str(tmp_path / "etc" / "agent.conf"))
    assert second.device_uuid == config.device_uuid and second.token != config.token


def test_a_refused_token_says_why_and_writes_nothing(api_server, tmp_path):
    token = enrollment_token(api_server.url, max_uses=1)
    assert run_enroll(api_server.url, token, tmp_path / "first").returncode == 0
    other = tmp_path / "second"
    other.mkdir()
    (other / "machine-id").write_text("another machine 0123456789\n")
    done = run_enroll(api_server.url, token, other)
    assert done.returncode == 1
    assert "enrollment failed: the server refused: Enrollment token used up" in done.stderr
    assert not (other / "etc").exists()


def test_the_server_serves_the_agent_package_and_its_sha256(settings, tmp_path):
    package = tmp_path / "jobs-agent_9.9_all.deb"
    package.write_bytes(b"!<arch>\n" + bytes(range(256)) * 64)
    client = create_app(replace(settings, agent_package=str(package))).test_client()
    answer = client.get("/agent/jobs-agent.deb")
    digest = hashlib.sha256(package.read_bytes()).hexdigest()
    assert answer.status_code == 200 and answer.data == package.read_bytes()
    assert answer.headers["X-Checksum-SHA256"] == digest
    assert "jobs-agent_9.9_all.deb" in answer.headers["Content-Disposition"]
    listed = client.get("/agent/jobs-agent.deb.sha256")
    assert listed.status_code == 200 and listed.text == f"{digest}  jobs-agent.deb\n"
    missing = create_app(settings).test_client().get("/agent/jobs-agent.deb")
    assert missing.status_code == 404
    assert "scripts/build-agent-deb" in missing.get_json()["message"]


def test_operators_make_tokens_and_decide_pending_devices_from_the_command_line(
        api_server, tmp_path):
    env = operator_env(api_server.url, TEST_ADMIN_TOKEN, tmp_path / "client.json")
    made = run(env, "enrollment-tokens", "create", "--name", "lab", "--type", "raspberry-pi",
               "--max-uses", "5", "--requires-acceptance", "-o", "json")
    assert made.returncode == 0, made.stderr
    token = json.loads(made.stdout)["enrollment_token"]
    homes = {name: tmp_path / name for name in ("kept", "refused")}
    for name, home in homes.items():
        home.mkdir()
        (home / "machine-id").write_text(f"machine {name} 0123456789\n")
        assert run_enroll(api_server.url, token, home, "--name", name).returncode == 0

    listed = run(env, "devices", "pending")
    assert listed.returncode == 0, listed.stderr
    pending = json.loads(run(env, "devices", "pending", "-o", "json").stdout)
    uuids = {row["device_name"]: row["uuid"] for row in pending["pending_enrollments"]}
    assert set(uuids) == {"kept", "refused"} and uuids["kept"] in listed.stdout

    accepted = run(env, "devices", "accept", uuids["kept"])
    assert accepted.returncode == 0 and "accepted kept" in accepted.stdout
    rejected = run(env, "devices", "reject", uuids["refused"])
    assert rejected.returncode == 0 and "rejected refused" in rejected.stdout
    for name, expected in (("kept", 200), ("refused", 401)):
        config = load_config({}, environ={}, config_file=str(homes[name] / "etc" / "agent.conf"))
        assert DeviceApi(config.server_url, config.device_uuid, config.token
                         ).next_job().status == expected
    tokens = json.loads(run(env, "enrollment-tokens", "list", "-o", "json").stdout)
    assert [(t["name"], t["uses"]) for t in tokens["enrollment_tokens"]] == [("lab", 2)]
    revoked = run(env, "enrollment-tokens", "revoke", str(tokens["enrollment_tokens"][0]["id"]))
    assert revoked.returncode == 0, revoked.stderr
    assert run_enroll(api_server.url, token, homes["kept"]).returncode == 1


def test_a_broker_that_is_down_does_not_fail_enrollment_or_deletion(settings):
    down = f"mqtt://admin:secret@127.0.0.1:{free_port()}"
    client = create_app(replace(settings, mqtt_admin_url=down)).test_client()
    token = client.post("/api/v1/enrollment-tokens", json={"name": "lab"},
                        headers=ADMIN).get_json()["enrollment_token"]
    answer = client.post("/api/v1/devices/enroll", json={
        "enrollment_token": token, "hardware_id": "hardware-down-00", "device_name": "pi"})
    assert answer.status_code == 201
    enrolled = answer.get_json()
    assert enrolled["mqtt"]["ready"] is False and enrolled["mqtt"]["password"]
    assert "unreachable" in enrolled["mqtt"]["problem"]
    asked = client.post(f"/api/v1/devices/{enrolled['uuid']}/mqtt-credentials",
                        headers={"Authorization": f"Bearer {enrolled['device_token']}"})
    assert asked.status_code == 503 and "unreachable" in asked.get_json()["message"]
    deleted = client.delete(f"/api/v1/devices/{enrolled['uuid']}", headers=ADMIN)
    assert deleted.status_code == 200


def test_a_server_without_mqtt_credentials_says_so(settings):
    client = create_app(settings).test_client()
    token = client.post("/api/v1/enrollment-tokens", json={"name": "lab"},
                        headers=ADMIN).get_json()["enrollment_token"]
    enrolled = client.post("/api/v1/devices/enroll", json={
        "enrollment_token": token, "hardware_id": "hardware-none-00", "device_name": "pi"}
    ).get_json()
    assert "mqtt" not in enrolled
    asked = client.post(f"/api/v1/devices/{enrolled['uuid']}/mqtt-credentials",
                        headers={"Authorization": f"Bearer {enrolled['device_token']}"})
    assert asked.status_code == 404 and "MQTT_ADMIN_URL" in asked.get_json()["message"]
