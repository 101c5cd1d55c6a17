"""Per-device MQTT credentials from enrollment, against a Mosquitto of the test's own that runs
the dynamic security plugin: a real ``jobs-agent enroll`` gets a login that hears its own jobs'
nudges and nothing else; deleting the device ends it, enrolling again replaces it, a pending
device's starts working when it is accepted, and an agent whose login the broker lost gets it
back from the server."""

from __future__ import annotations

import queue
import shutil
import uuid
from dataclasses import replace
from urllib.parse import urlsplit

import paho.mqtt.client as mqtt
import pytest
from agent_processes import run_enroll, start_agent
from json_http import JsonHttp
from private_services import PrivateDynsecMosquitto
from processes import wait_until
from suite_constants import TEST_ADMIN_TOKEN

from agent.config import load_config
from dispatcher.mqtt_admin import DynsecAdmin, revoke_commands
from schemas.nudges import agent_client_id, notify_topic

pytestmark = pytest.mark.skipif(shutil.which("mosquitto_ctrl") is None,
                                reason="mosquitto-clients is not installed: deploy/services.sh")

ADMIN = {"Authorization": f"Bearer {TEST_ADMIN_TOKEN}"}
SUBACK_REFUSED = 0x80


@pytest.fixture
def broker(tmp_path):
    broker = PrivateDynsecMosquitto(tmp_path / "mosquitto")
    broker.start()
    broker.add_nudger()
    yield broker
    broker.remove()


@pytest.fixture
def issuing(settings, broker):
    """The server's settings: nudges as the broker's nudger, device logins made by its admin."""
    return replace(settings, mqtt_url=broker.nudger_url, mqtt_admin_url=broker.admin_url,
                   poll_after_s=1)


class Api:
    def __init__(self, url: str) -> None:
        self.url = url
        self.http = JsonHttp(url)

    def call(self, method: str, path: str, body: object = None, expect: int = 200,
             headers: dict | None = None) -> dict:
        status, answer = self.http.request(method, f"/api/v1{path}", body,
                                           ADMIN if headers is None else headers)
        assert status == expect, answer
        return answer

    def enrollment_token(self, **body) -> str:
        return self.call("POST", "/enrollment-tokens", {"name": "fleet", **body},
                         expect=201)["enrollment_token"]

    def enroll(self, token: str, hardware: str, expect: int = 201) -> dict:
        return self.call("POST", "/devices/enroll", {
            "enrollment_token": token, "hardware_id": hardware, "device_name": hardware},
            expect=expect, headers={})


class Login:
    """One MQTT connection with a device's login; ``subscribe`` answers the broker's verdict
    on a topic, ``messages`` what arrives."""

    def __init__(self, url: str, username: str, password: str, client_id: str) -> None:
        parts = urlsplit(url)
        self.verdicts: queue.Queue = queue.Queue()
        self.messages: queue.Queue = queue.Queue()
        self.disconnects: queue.Queue = queue.Queue()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id)
        self.client.username_pw_set(username, password)
        self.client.on_connect = lambda c, u, f, code, p: self.verdicts.put(code)
        self.client.on_subscribe = lambda c, u, mid, codes, p: self.verdicts.put(codes[0])
        self.client.on_message = lambda c, u, message: self.messages.put(
            (message.topic, message.payload))
        self.client.on_disconnect = lambda c, u, flags, code, p: self.disconnects.put(code)
        self.client.connect(parts.hostname or "127.0.0.1", parts.port or 1883)
        self.client.loop_start()
        self.accepted = not self.verdicts.get(timeout=10).is_failure

    def subscribe(self, topic: str) -> bool:
        self.client.subscribe(topic, qos=1)
        return not self.verdicts.get(timeout=10).is_failure

    def publish(self, topic: str, payload: bytes) -> None:
        self.client.publish(topic, payload, qos=1).wait_for_publish(10)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def login_of(credentials: dict, device_uuid: str) -> Login:
    return Login(credentials["url"], credentials["username"], credentials["password"],
                 agent_client_id(device_uuid))


def test_an_enrolled_agent_hears_the_nudge_for_its_own_job(
    issuing, server_processes, tmp_path
):
    server_processes.start_worker(issuing)
    api = Api(server_processes.start_api(issuing).url)
    done = run_enroll(api.url, api.enrollment_token(), tmp_path, "--name", "pi-kitchen")
    assert done.returncode == 0, done.stderr
    assert "MQTT nudges from" in done.stdout and "not usable yet" not in done.stdout
    config_file = tmp_path / "etc" / "agent.conf"
    assert (config_file.stat().st_mode & 0o777) == 0o600
    config = load_config({}, environ={}, config_file=str(config_file))
    login = urlsplit(config.mqtt_url)
    assert login.username == config.device_uuid and login.password

    # Polling once an hour: only the nudge can bring it the job at once.
    agent = start_agent(server_processes, api.url, {"uuid": config.device_uuid,
                                                    "device_token": "",
                                                    "device_name": "pi-kitchen"},
                        tmp_path / "home", poll_interval_s=3600, config=str(config_file))
    wait_until(lambda: "mqtt subscribed" in agent.log_text(), 30, "the agent's subscription")
    job = api.call("POST", "/jobs/execute", {
        "job_name": "hello", "target_type": "device", "target_devices": [config.device_uuid],
        "job_document": {"version": "1.0", "steps": [
            {"name": "hi", "type": "runCommand", "input": {"command": "true"}}]},
    }, expect=201)["job"]
    wait_until(lambda: api.call("GET", f"/jobs/executions/{job['job_id']}")["job"]["status"]
               == "SUCCEEDED", 30, "the job to succeed")


def test_a_device_login_reads_its_own_topic_only_ends_with_the_device_and_rotates(
    issuing, server_processes
):
    api = Api(server_processes.start_api(issuing).url)
    token = api.enrollment_token()
    first = api.enroll(token, "hardware-one-000")
    second = api.enroll(token, "hardware-two-000")
    assert first["mqtt"]["ready"] and first["mqtt"]["username"] == str(first["uuid"])
    own, other = str(first["uuid"]), str(second["uuid"])

    listener = login_of(second["mqtt"], other)
    device = login_of(first["mqtt"], own)
    try:
        assert listener.accepted and device.accepted
        assert listener.subscribe(notify_topic(other))
        assert not device.subscribe(notify_topic(other))
        assert not device.subscribe("devices/+/jobs/notify")
        assert device.subscribe(notify_topic(own))
        # A device publishes nothing: neither to another device nor to itself.
        device.publish(notify_topic(other), b'{"event": "queued"}')
        device.publish(notify_topic(own), b'{"event": "queued"}')
        nudger = Login(issuing.mqtt_url, *PrivateDynsecMosquitto.NUDGER, "nudger")
        nudger.publish(notify_topic(other), b"from the server")
        nudger.close()
        assert listener.messages.get(timeout=10) == (notify_topic(other), b"from the server")
        assert listener.messages.empty() and device.messages.empty()

        # Deleting the device ends its session at once, and its login for good.
        device.client.reconnect_delay_set(60, 60)
        api.call("DELETE", f"/devices/{own}")
        assert device.disconnects.get(timeout=10) is not None
        assert not login_of(first["mqtt"], own).accepted
    finally:
        device.close()
        listener.close()

    again = api.enroll(token, "hardware-two-000")
    assert again["uuid"] == second["uuid"] and again["mqtt"]["password"] != second["mqtt"][
        "password"]
    assert not login_of(second["mqtt"], other).accepted
    renewed = login_of(again["mqtt"], other)
    assert renewed.accepted
    renewed.close()


def test_a_pending_device_login_works_once_accepted_and_never_once_rejected(
    issuing, server_processes
):
    api = Api(server_processes.start_api(issuing).url)
    token = api.enrollment_token(requires_acceptance=True)
    kept = api.enroll(token, "hardware-kept-00", expect=202)
    refused = api.enroll(token, "hardware-refused", expect=202)
    assert not kept["mqtt"]["ready"] and "accepts" in kept["mqtt"]["problem"]
    assert not login_of(kept["mqtt"], str(kept["uuid"])).accepted

    api.call("POST", f"/devices/pending/{kept['uuid']}/accept", expect=201)
    api.call("POST", f"/devices/pending/{refused['uuid']}/reject")
    accepted = login_of(kept["mqtt"], str(kept["uuid"]))
    assert accepted.accepted
    accepted.close()
    assert not login_of(refused["mqtt"], str(refused["uuid"])).accepted


def test_an_agent_whose_login_the_broker_lost_gets_it_back_from_the_server(
    issuing, broker, server_processes, tmp_path
):
    api = Api(server_processes.start_api(issuing).url)
    enrolled = api.enroll(api.enrollment_token(), "hardware-lost-00")
    device_uuid = str(enrolled["uuid"])
    # As if the broker had been down when the device enrolled.
    DynsecAdmin(broker.admin_url).run(revoke_commands(device_uuid))
    mqtt_url = enrolled["mqtt"]["url"].replace(
        "mqtt://", f"mqtt://{device_uuid}:{enrolled['mqtt']['password']}@")
    agent = start_agent(server_processes, api.url, {**enrolled, "device_name": "lost"},
                        tmp_path / "home", poll_interval_s=3600, mqtt_url=mqtt_url)
    assert "mqtt login renewed by the server" in agent.log_text()


def test_the_credentials_endpoint_is_the_devices_own_and_says_when_it_cannot(
    issuing, broker, server_processes
):
    api = Api(server_processes.start_api(issuing).url)
    enrolled = api.enroll(api.enrollment_token(), "hardware-ask-000")
    device = {"Authorization": f"Bearer {enrolled['device_token']}"}
    path = f"/devices/{enrolled['uuid']}/mqtt-credentials"
    answer = api.call("POST", path, headers=device)
    assert answer["password"] == enrolled["mqtt"]["password"] and answer["ready"]
    api.call("POST", f"/devices/{uuid.uuid4()}/mqtt-credentials", headers=device, expect=403)

    # A rotated device token ends the login derived from the old one; the device's new token
    # gets the new login.
    rotated = api.call("POST", f"/devices/{enrolled['uuid']}/token")
    assert not login_of(enrolled["mqtt"], str(enrolled["uuid"])).accepted
    device = {"Authorization": f"Bearer {rotated['device_token']}"}
    renewed = api.call("POST", path, headers=device)
    assert renewed["password"] != enrolled["mqtt"]["password"]
    login = login_of(renewed, str(enrolled["uuid"]))
    assert login.accepted
    login.close()

    broker.stop()
    down = api.call("POST", path, headers=device, expect=503)
    assert "unreachable" in down["message"]
