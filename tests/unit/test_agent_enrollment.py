"""What ``jobs-agent enroll`` sends as the hardware's identity and the config it writes."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from agent.config import load_config
from agent.enrollment import Enrolled, EnrollmentError, config_text, enroll, hardware_id


def test_the_first_readable_identity_is_sent_hashed_without_its_nul(tmp_path: Path) -> None:
    serial, machine_id = tmp_path / "serial-number", tmp_path / "machine-id"
    machine_id.write_text("5f1e0c7a9b2d4e6f8a0b1c2d3e4f5a6b\n")
    sources = (serial, machine_id)
    from_machine_id = hardware_id(sources)
    assert from_machine_id == hashlib.sha256(
        b"device-jobs hardware:5f1e0c7a9b2d4e6f8a0b1c2d3e4f5a6b").hexdigest()
    # A Pi's serial (device tree strings end in NUL) wins over the machine id.
    serial.write_bytes(b"10000000abcdef01\0")
    assert hardware_id(sources) == hashlib.sha256(
        b"device-jobs hardware:10000000abcdef01").hexdigest()


def test_no_identity_at_all_is_an_error_naming_where_it_looked(tmp_path: Path) -> None:
    with pytest.raises(EnrollmentError, match="no hardware identity: none of .*machine-id"):
        hardware_id((tmp_path / "machine-id",))


def test_the_written_config_is_one_the_agent_loads(tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text("device-token")
    token.chmod(0o600)
    config = tmp_path / "agent.conf"
    config.write_text(config_text("https://jobs.example.com",
                                  "8479359e-dbeb-4858-813c-e8a9008dde04", str(token), "", False))
    config.chmod(0o600)
    loaded = load_config({}, environ={}, config_file=str(config))
    assert (loaded.server_url, loaded.device_uuid, loaded.token) == (
        "https://jobs.example.com", "8479359e-dbeb-4858-813c-e8a9008dde04", "device-token")


def test_plain_http_to_another_host_is_refused_before_anything_is_sent(tmp_path: Path) -> None:
    with pytest.raises(EnrollmentError, match="plain http to another host"):
        enroll("http://jobs.example.com", "token", config_file=str(tmp_path / "agent.conf"),
               token_file=str(tmp_path / "token"))
    assert list(tmp_path.iterdir()) == []


def test_enrolling_again_keeps_what_the_operator_added_to_the_config() -> None:
    before = ("[agent]\nserver_url = https://old.example.com\ndevice_uuid = old\n"
              "token = stale\nmqtt_url = mqtt://u:p@broker:1883\npoll_interval_s = 60\n")
    after = config_text("https://jobs.example.com", "8479359e-dbeb-4858-813c-e8a9008dde04",
                        "/etc/jobs-agent/token", "", False, before)
    assert "mqtt_url = mqtt://u:p@broker:1883" in after and "poll_interval_s = 60" in after
    assert "server_url = https://jobs.example.com" in after and "old" not in after
    assert "stale" not in after


def test_a_config_that_cannot_be_written_is_refused_before_the_server_is_asked(
        tmp_path: Path) -> None:
    blocked = tmp_path / "not-a-directory"
    blocked.write_text("")
    with pytest.raises(EnrollmentError, match="cannot create .*not-a-directory"):
        enroll("https://jobs.example.invalid", "token",
               config_file=str(blocked / "jobs-agent" / "agent.conf"),
               token_file=str(blocked / "jobs-agent" / "token"))


def test_the_servers_mqtt_login_goes_into_the_config_over_the_operators() -> None:
    enrolled = Enrolled("accepted", "8479359e-dbeb-4858-813c-e8a9008dde04", "pi", "token", {
        "url": "mqtts://mqtt.example.com:8883", "username": "8479359e-dbeb-4858-813c-e8a9008dde04",
        "password": "a/b:c@d", "ready": True})
    assert enrolled.mqtt_url == ("mqtts://8479359e-dbeb-4858-813c-e8a9008dde04:a%2Fb%3Ac%40d"
                                 "@mqtt.example.com:8883")
    before = "[agent]\nmqtt_url = mqtt://static:old@broker:1883\n"
    after = config_text("https://jobs.example.com", enrolled.device_uuid, "/etc/jobs-agent/token",
                        "", False, before, enrolled.mqtt_url)
    assert f"mqtt_url = {enrolled.mqtt_url}\n" in after
    assert Enrolled("accepted", "u", "pi", "token").mqtt_url == ""
