"""The long-running agent: every part wired together from one AgentConfig."""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

from agent import __version__
from agent.config import AgentConfig
from agent.downloads import ArtifactSource, Downloader
from agent.engine import EngineSettings, JobEngine
from agent.handlers import HandlerStore
from agent.inventory import InventoryReporter
from agent.outbox import Outbox
from agent.poller import Poller
from agent.reporter import Reporter
from agent.runner import JobRunner
from agent.server_api import AgentError, DeviceApi
from agent.signatures import decode_public_key
from agent.state import JobState

if TYPE_CHECKING:
    from agent.mqtt_listener import NotifyListener

log = logging.getLogger(__name__)

# A broker that refuses the device's MQTT login makes the agent ask the server to give the
# broker its identity again (it was down when the device enrolled, say), at most this often.
MQTT_LOGIN_ASK_INTERVAL_S = 300.0


def engine_settings(config: AgentConfig) -> EngineSettings:
    return EngineSettings(config.output_cap_bytes, config.step_timeout_s, config.reboot_wait_s)


def handler_store(config: AgentConfig, api: DeviceApi | None) -> HandlerStore:
    return HandlerStore(Path(config.handler_dir), Path(config.state_dir) / "handlers", api,
                        allow_local=config.allow_local_handlers,
                        fetch_pinned_only=bool(config.signing_public_key))


def device_api(config: AgentConfig) -> DeviceApi:
    return DeviceApi(config.server_url, config.device_uuid, config.token, config.ca_file)


class Agent:
    def __init__(self, config: AgentConfig) -> None:
        config.require_server()
        self.config = config
        state_dir = Path(config.state_dir)
        api = self.api = device_api(config)
        reporter = Reporter(api, Outbox(state_dir / "outbox"))
        engine = JobEngine(engine_settings(config), handler_store(config, api),
                           artifacts=ArtifactSource(Downloader(state_dir), api.open_artifact))
        state = JobState(state_dir, Path(config.boot_id_file))
        signing_key = (decode_public_key(config.signing_public_key)
                       if config.signing_public_key else None)
        self.runner = JobRunner(api, engine, state, reporter, self._cancel_check_s, signing_key)
        self.poller = Poller(api, self.runner, reporter, config.poll_interval_s)
        self.inventory = InventoryReporter(api, Path(config.inventory_dir), state_dir,
                                           config.inventory_interval_s)
        self.listener: NotifyListener | None = None
        self._login_asked_at: float | None = None
        self._login_lock = threading.Lock()
        if config.mqtt_url:
            # Imported only here: without MQTT the agent does not need paho-mqtt at all.
            from agent.mqtt_listener import NotifyListener

            self.listener = NotifyListener(config.mqtt_url, config.device_uuid, self._nudged,
                                           self._mqtt_refused)

    def run(self) -> None:
        log.info("jobs-agent starting version=%s device_uuid=%s server=%s mqtt=%s",
                 __version__, self.config.device_uuid, self.config.server_url,
                 bool(self.listener))
        if self.listener is not None:
            self.listener.start()
        self.inventory.start()
        try:
            self.poller.run()
        finally:
            self.inventory.stop()
            if self.listener is not None:
                self.listener.stop()

    def stop(self) -> None:
        """Stop polling and any running step; a cut job is settled at the next start."""
        self.poller.stop()

    def _nudged(self, event: str, job_id: str | None) -> None:
        log.debug("nudge event=%s job_id=%s", event, job_id)
        if event == "canceled" and job_id:
            self.runner.notify_canceled(job_id)
        self.poller.nudge()

    def _mqtt_refused(self) -> None:
        """The broker refused our login: ask the server for our identity, in the background
        (this runs on paho's network thread), at most every MQTT_LOGIN_ASK_INTERVAL_S."""
        with self._login_lock:
            now = time.monotonic()
            if (self._login_asked_at is not None
                    and now - self._login_asked_at < MQTT_LOGIN_ASK_INTERVAL_S):
                return
            self._login_asked_at = now
        threading.Thread(target=self._ask_for_mqtt_login, name="mqtt-login", daemon=True).start()

    def _ask_for_mqtt_login(self) -> None:
        try:
            answer = self.api.request_mqtt_login()
        except AgentError as exc:
            log.warning("mqtt login not renewed error=%s", exc)
            return
        if answer.status != 200:
            log.warning("mqtt login not renewed status=%s message=%s", answer.status,
                        answer.body.get("message", ""))
            return
        assert self.listener is not None
        self.listener.set_login(str(answer.body["username"]), str(answer.body["password"]))
        log.info("mqtt login renewed by the server username=%s", answer.body["username"])

    def _cancel_check_s(self) -> float:
        # With MQTT up, cancels arrive as nudges; the periodic check is only a safety net.
        if self.listener is not None and self.listener.connected:
            return max(self.config.poll_interval_s, self.config.cancel_check_s)
        return self.config.cancel_check_s
