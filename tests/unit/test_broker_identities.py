"""Each device's MQTT login: derived from its device token, told to the broker as commands of
Mosquitto's dynamic security plugin that allow its own notify topic only."""

from __future__ import annotations

import uuid

from dispatcher.config import Settings
from dispatcher.fleet.broker_identities import credentials_for, device_broker_url
from dispatcher.mqtt_admin import _answers_failed, grant_commands

DEVICE = uuid.UUID("8479359e-dbeb-4858-813c-e8a9008dde04")
ISSUING = Settings(mqtt_url="mqtt://dispatcher:secret@10.0.0.5:1884",
                   mqtt_admin_url="mqtt://admin:admin-secret@10.0.0.5:1884",
                   mqtt_device_url="mqtts://mqtt.example.com:8883")


def test_the_password_follows_the_device_token_and_the_admins_secret() -> None:
    first = credentials_for(ISSUING, DEVICE, b"token hash one")
    assert first == credentials_for(ISSUING, DEVICE, b"token hash one")
    assert first.username == str(DEVICE) and first.url == "mqtts://mqtt.example.com:8883"
    assert len(first.password) >= 40
    assert credentials_for(ISSUING, DEVICE, b"token hash two").password != first.password
    other_key = Settings(mqtt_admin_url="mqtt://admin:another@10.0.0.5:1884")
    assert credentials_for(other_key, DEVICE, b"token hash one").password != first.password


def test_devices_are_told_the_broker_without_anyones_credentials() -> None:
    assert device_broker_url(Settings(mqtt_url="mqtt://dispatcher:secret@broker:1883",
                                      mqtt_admin_url="mqtt://a:b@broker:1884")
                             ) == "mqtt://broker:1883"


def test_a_device_role_subscribes_to_its_own_topic_literally_and_publishes_nothing() -> None:
    commands = grant_commands(str(DEVICE), "pw", f"jobs-agent-{DEVICE}",
                              f"devices/{DEVICE}/jobs/notify")
    assert [c["command"] for c in commands] == ["deleteClient", "deleteRole", "createRole",
                                                "createClient"]
    acls = commands[2]["acls"]
    assert {(a["acltype"], a["topic"], a["allow"]) for a in acls} == {
        ("subscribeLiteral", f"devices/{DEVICE}/jobs/notify", True),
        ("publishClientSend", "#", False)}
    assert commands[3]["clientid"] == f"jobs-agent-{DEVICE}"


def test_deleting_what_is_absent_is_no_failure_but_a_refused_create_is() -> None:
    commands = [{"command": "deleteClient", "correlationData": "1"},
                {"command": "createClient", "correlationData": "2"},
                {"command": "createRole", "correlationData": "3"}]
    answers = [{"command": "deleteClient", "correlationData": "1", "error": "Client not found"},
               {"command": "createClient", "correlationData": "2",
                "error": "Client already exists"}]
    assert _answers_failed(commands, answers) == ["createClient: Client already exists",
                                                  "createRole: no answer"]
