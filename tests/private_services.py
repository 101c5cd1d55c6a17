"""Services of a test's own: PostgreSQL, Redis, RabbitMQ and Mosquitto on free ports, with
their data in the test's directory, that a test stops, kills and starts again without touching
the machine's services (which other tests use at the same time).

Each is started with the same port and data every time, so clients reconnect to the same
address, as after a restart in production. A service runs in a session of its own
(``dispatcher.commands.demo.processes.launch``): ``kill`` SIGKILLs it and its children, as a
crash would;
``stop`` is the service's own clean shutdown.

    redis = PrivateRedis(tmp_path / "redis")
    redis.start()
    redis.stop(); time.sleep(4); redis.start()    # or redis.restart(down_s=4)
"""

from __future__ import annotations

import contextlib
import getpass
import os
import pwd
import shlex
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

from private_postgres import PrivatePostgres
from processes import free_port, wait_until

from dispatcher.commands.demo.processes import BackgroundProcess, launch, wait_until_ready

START_TIMEOUT_S = 60.0


def port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


class Service:
    """A server process of the test's own: ``start``, ``stop``, ``kill``, ``restart``."""

    name = "service"

    def __init__(self, root: Path) -> None:
        self.root = root
        self.root.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.process: BackgroundProcess | None = None
        self.starts = 0

    def argv(self) -> list[str]:
        raise NotImplementedError

    def env(self) -> dict[str, str]:
        return dict(os.environ)

    def is_ready(self) -> bool:
        return port_open(self.port)

    def start(self) -> None:
        self.starts += 1
        self.process = launch(self.name, self.argv(), self.env(),
                              self.root / f"{self.name}.log")
        try:
            wait_until_ready(self.process, self.is_ready, START_TIMEOUT_S)
        except Exception:
            self.process.kill()
            raise

    def stop(self) -> None:
        """The service's clean shutdown (SIGTERM), waiting until it has exited."""
        if self.process is not None:
            self.process.stop(START_TIMEOUT_S)
            wait_until(lambda: not port_open(self.port), 30, f"{self.name} to close its port")

    def kill(self) -> None:
        if self.process is not None:
            self.process.kill()

    def restart(self, down_s: float = 0.0, kill: bool = False) -> None:
        self.kill() if kill else self.stop()
        time.sleep(down_s)
        self.start()

    def is_running(self) -> bool:
        return self.process is not None and self.process.is_running()

    def remove(self) -> None:
        """Stop for good, whatever state the service is in."""
        self.kill()


class PrivateRedis(Service):
    """redis-server with an append-only file, so queued tasks outlive a restart, as with a
    persistent production Redis (the machine's test Redis keeps nothing)."""

    name = "redis"

    def argv(self) -> list[str]:
        return [shutil.which("redis-server") or "redis-server", "--bind", "127.0.0.1",
                "--port", str(self.port), "--dir", str(self.root), "--save", "",
                "--appendonly", "yes", "--daemonize", "no", "--protected-mode", "no"]

    def is_ready(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def url(self, db: int) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"


class PrivateMosquitto(Service):
    name = "mosquitto"

    def argv(self) -> list[str]:
        config = self.root / "mosquitto.conf"
        config.write_text(f"listener {self.port} 127.0.0.1\nallow_anonymous true\n"
                          f"persistence false\nuser {getpass.getuser()}\n")
        return [shutil.which("mosquitto") or "/usr/sbin/mosquitto", "-c", str(config)]

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"


class PrivateDynsecMosquitto(PrivateMosquitto):
    """Mosquitto as ``deploy/mosquitto/dynamic-security.conf`` runs it (on a free port, with its
    files here), set up by the commands that file documents: every client logs in,
    ``admin_url``'s client administers the dynamic security plugin, ``nudger_url``'s client
    (made by ``add_nudger``) may publish to every device's notify topic."""

    name = "mosquitto-dynsec"
    DEPLOYED = Path(__file__).resolve().parents[1] / "deploy" / "mosquitto" / \
        "dynamic-security.conf"
    ADMIN = ("admin", "admin-password")
    NUDGER = ("dispatcher", "nudger-password")

    def documented_commands(self) -> list[list[str]]:
        """The mosquitto_ctrl commands of the deployed file's setup, for this broker."""
        values = {"$MQTT_ADMIN_PASSWORD": self.ADMIN[1], "$MQTT_SERVER_PASSWORD": self.NUDGER[1],
                  "/var/lib/mosquitto/": f"{self.root}/"}
        commands = []
        for line in self.DEPLOYED.read_text().splitlines():
            text = line.lstrip("#").strip()
            if not text.startswith("mosquitto_ctrl"):
                continue
            for name, value in values.items():
                text = text.replace(name, value)
            argv = shlex.split(text)
            if argv[1] != "dynsec":  # a command for the running broker
                argv[1:1] = ["-h", "127.0.0.1", "-p", str(self.port)]
            commands.append([shutil.which("mosquitto_ctrl") or "mosquitto_ctrl", *argv[1:]])
        return commands

    def argv(self) -> list[str]:
        state = self.root / "dynamic-security.json"
        init, *_ = self.documented_commands()
        if not state.exists():
            subprocess.run(init, check=True, capture_output=True, timeout=30)
        plugin = sorted(Path("/usr/lib").glob("*/mosquitto_dynamic_security.so"))
        config = self.DEPLOYED.read_text()
        for deployed, here in (
                ("listener 1883\n", f"listener {self.port} 127.0.0.1\n"),
                ("listener 1884 127.0.0.1\n", ""),
                ("plugin /usr/lib/x86_64-linux-gnu/mosquitto_dynamic_security.so",
                 f"plugin {plugin[0]}"),
                ("/var/lib/mosquitto/", f"{self.root}/")):
            assert deployed in config, f"{deployed!r} is no longer in {self.DEPLOYED}"
            config = config.replace(deployed, here)
        (self.root / "mosquitto.conf").write_text(f"{config}\nuser {getpass.getuser()}\n")
        return [shutil.which("mosquitto") or "/usr/sbin/mosquitto", "-c",
                str(self.root / "mosquitto.conf")]

    def _login_url(self, login: tuple[str, str]) -> str:
        return f"mqtt://{login[0]}:{login[1]}@127.0.0.1:{self.port}"

    @property
    def admin_url(self) -> str:
        return self._login_url(self.ADMIN)

    @property
    def nudger_url(self) -> str:
        return self._login_url(self.NUDGER)

    def add_nudger(self) -> None:
        """The server's nudging user, made as the deployed file says."""
        for command in self.documented_commands()[1:]:
            subprocess.run(command, check=True, capture_output=True, timeout=30)


class PrivateRabbitMQ(Service):
    """A RabbitMQ node of its own: its own node name, AMQP and distribution ports, data and log
    directories, and a configuration file that ignores the machine's (which pins 5672).

    The server scripts switch to the ``rabbitmq`` user when started as root, so the node's
    directory is given to that user. It registers with the machine's epmd (or starts one).
    """

    name = "rabbitmq"

    def __init__(self, root: Path) -> None:
        # Its own directory under /tmp: the node's user must reach it, and a test's
        # directory is private to the user running the tests.
        del root
        super().__init__(Path(tempfile.mkdtemp(prefix="dj-chaos-rabbitmq-")))
        self.node = f"djchaos{os.getpid()}x{uuid.uuid4().hex[:6]}@localhost"
        self.dist_port = free_port()
        (self.root / "rabbitmq.conf").write_text(
            f"listeners.tcp.local = 127.0.0.1:{self.port}\nloopback_users = none\n"
            # A test's broker restarts often; it must not refuse publishers for lack of disk.
            "disk_free_limit.absolute = 1MB\n")
        (self.root / "rabbitmq-env.conf").write_text("")
        (self.root / "enabled_plugins").write_text("[].\n")
        if os.geteuid() == 0:
            user = pwd.getpwnam("rabbitmq")
            for path in [self.root, *self.root.iterdir()]:
                os.chown(path, user.pw_uid, user.pw_gid)

    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "RABBITMQ_NODENAME": self.node,
            "RABBITMQ_CONF_ENV_FILE": str(self.root / "rabbitmq-env.conf"),
            "RABBITMQ_CONFIG_FILE": str(self.root / "rabbitmq.conf"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(self.root / "enabled_plugins"),
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            "RABBITMQ_MNESIA_BASE": str(self.root / "mnesia"),
            "RABBITMQ_LOG_BASE": str(self.root / "log"),
            "RABBITMQ_PID_FILE": str(self.root / "pid"),
            "ERL_EPMD_ADDRESS": "127.0.0.1",
        }

    def argv(self) -> list[str]:
        return [shutil.which("rabbitmq-server") or "/usr/sbin/rabbitmq-server"]

    def kill(self) -> None:
        # The node may have left its process group (the scripts switch users): its pid file.
        pid_file = self.root / "pid"
        if pid_file.exists():
            with contextlib.suppress(ValueError, ProcessLookupError, PermissionError):
                os.kill(int(pid_file.read_text().strip()), signal.SIGKILL)
        super().kill()
        wait_until(lambda: not port_open(self.port), 30, "rabbitmq to close its port")

    def stop(self) -> None:
        subprocess.run(["rabbitmqctl", "-n", self.node, "stop", str(self.root / "pid")],
                       env=self.env(), capture_output=True, timeout=START_TIMEOUT_S, check=False)
        super().stop()

    def remove(self) -> None:
        self.kill()
        shutil.rmtree(self.root, ignore_errors=True)

    def queues(self) -> dict[str, dict[str, str]]:
        """Every queue of the node's default vhost: its type, durability and message count."""
        listed = subprocess.run(
            ["rabbitmqctl", "-n", self.node, "-q", "list_queues", "--no-table-headers",
             "name", "type", "durable", "messages"],
            env=self.env(), capture_output=True, text=True, timeout=60, check=True).stdout
        queues = {}
        for line in listed.splitlines():
            name, kind, durable, messages = line.split("\t")
            queues[name] = {"type": kind, "durable": durable, "messages": messages}
        return queues

    @property
    def url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.port}//"


class PostgresService:
    """``tests/private_postgres.PrivatePostgres`` under the same names as the other services."""

    name = "postgresql"

    def __init__(self) -> None:
        self.server = PrivatePostgres()
        self.port = self.server.port

    def start(self) -> None:
        self.server.start()

    def stop(self) -> None:
        """A fast shutdown: clients are disconnected at once (``-m immediate``)."""
        self.server.stop()

    kill = stop

    def restart(self, down_s: float = 0.0, kill: bool = False) -> None:
        self.stop()
        time.sleep(down_s)
        self.start()

    def remove(self) -> None:
        self.server.remove()

    def url(self, dbname: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{dbname}"
