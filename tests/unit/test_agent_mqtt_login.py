"""An agent whose MQTT login the broker refuses asks the server to tell the broker again, once
per interval however often the broker refuses, and logs in with what the server answers.
(Run in the Debian trees too: it imports only the agent and its fakes.)"""

from __future__ import annotations

import threading

from agent_fakes import DEVICE_UUID, RENEWED_MQTT_PASSWORD, TOKEN, fake_server

from agent.config import AgentConfig
from agent.daemon import Agent


def test_a_refused_login_asks_the_server_once_per_interval(tmp_path):
    with fake_server() as fake:
        agent = Agent(AgentConfig(
            server_url=fake.url, device_uuid=DEVICE_UUID, token=TOKEN,
            state_dir=str(tmp_path / "state"), handler_dir=str(tmp_path / "handlers"),
            mqtt_url=f"mqtt://{DEVICE_UUID}:stale@127.0.0.1:1"))
        assert agent.listener is not None
        logins: list[tuple[str, str]] = []
        renewed = threading.Event()

        def set_login(user: str, password: str) -> None:
            logins.append((user, password))
            renewed.set()

        agent.listener.set_login = set_login
        for _ in range(3):  # paho calls back on every refused reconnect
            agent._mqtt_refused()
        assert renewed.wait(10)
        assert logins == [(DEVICE_UUID, RENEWED_MQTT_PASSWORD)]
        assert fake.mqtt_logins == 1
