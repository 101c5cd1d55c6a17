"""The standard handler scripts, as the library registers them under each handler's name, run
as the agent runs them (runAsUser first, then the args), against a local HTTP server and fake
package and service managers put on PATH."""

from __future__ import annotations

import functools
import hashlib
import os
import shutil
import ssl
import subprocess
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from dispatcher.catalog.standard.library import standard_handlers

SCRIPTS = {handler["name"]: handler["script_content"] for handler in standard_handlers()}
ALL = sorted(SCRIPTS)
# What the scripts may use besides the fakes: found on the real PATH, linked into a private bin.
TOOLS = ("sh", "dirname", "mktemp", "sha256sum", "cut", "tr", "chmod", "mv", "wc", "rm", "cat",
         "grep", "awk", "df", "getconf", "sync")


def run(name: str, *args: str, path: str | None = None) -> subprocess.CompletedProcess:
    env = {"PATH": path or os.environ["PATH"], "LC_ALL": "C"}
    return subprocess.run(["/bin/sh", "-c", SCRIPTS[name], name, "", *args],
                          capture_output=True, text=True, timeout=60, env=env)


def bin_dir(tmp_path: Path, fakes: dict[str, str] | None = None, tools=TOOLS) -> str:
    """A PATH of one directory: the real ``tools`` and ``fakes`` (name → sh body)."""
    directory = tmp_path / "bin"
    directory.mkdir(exist_ok=True)
    for tool in tools:
        real = shutil.which(tool)
        if real and not (directory / tool).exists():
            (directory / tool).symlink_to(real)
    for name, body in (fakes or {}).items():
        (directory / name).write_text(f"#!/bin/sh\n{body}\n")
        (directory / name).chmod(0o755)
    return str(directory)


def recorder(log: Path, then: str = "exit 0") -> str:
    return f'echo "$(basename "$0") $*" >> {log}\n{then}'


@pytest.mark.parametrize("family", [
    ("install-packages", "remove-packages", "verify-packages-installed", "verify-packages-removed"),
    ("start-services", "stop-services", "restart-services"),
])
def test_handlers_that_differ_only_in_what_they_do_are_one_script_that_knows_its_name(family):
    scripts = {SCRIPTS[name].replace(f"\nhandler={name}\n", "\nhandler=NAME\n") for name in family}
    assert len(scripts) == 1


@pytest.mark.parametrize("name", ALL)
def test_every_handler_answers_usage_with_exit_2_without_its_user_argument(name):
    result = subprocess.run(["/bin/sh", "-c", SCRIPTS[name], name], capture_output=True,
                            text=True, timeout=30)
    assert result.returncode == 2
    assert result.stderr.startswith(f"usage: {name} USER")


@pytest.mark.parametrize(("name", "args"), [
    ("download-file", []), ("download-file", ["https://x/y"]),
    ("download-file", ["ftp://x/y", "/tmp/y"]), ("download-file", ["https://x/y", "rel/y"]),
    ("download-file", ["https://x/y", "/tmp/y", "abc"]),
    ("download-file", ["https://x/y", "/tmp/y", "g" * 64]),
    ("download-file", ["https://x/y", "/tmp/y", "a" * 64, "extra"]),
    ("install-packages", []), ("install-packages", ["--purge"]), ("install-packages", ["a;b"]),
    ("remove-packages", ["*"]), ("verify-packages-installed", [""]),
    ("verify-packages-removed", ["$(x)"]),
    ("start-services", []), ("stop-services", ["a/b"]), ("restart-services", ["-x"]),
    ("reboot", ["now"]), ("shutdown", ["soon"]), ("shutdown", ["1441"]), ("shutdown", ["1", "2"]),
    ("health-check", ["--max-load"]), ("health-check", ["--max-load", "high"]),
    ("health-check", ["--colour", "red"]), ("health-check", ["--min-disk-free", "1.2.3"]),
])
def test_bad_arguments_get_usage_and_exit_2(name, args):
    result = run(name, *args)
    assert result.returncode == 2, result
    assert f"usage: {name} USER" in result.stderr


@pytest.fixture
def web(tmp_path: Path):
    """A local HTTP server for the files in tmp_path/www."""
    root = tmp_path / "www"
    root.mkdir()
    handler = functools.partial(SimpleHTTPRequestHandler, directory=str(root))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield root, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize("client", ["curl", "wget"])
def test_download_file_fetches_checks_its_sha256_and_moves_it_into_place(tmp_path, web, client):
    root, url = web
    content = b"worker_processes 4;\n"
    (root / "nginx.conf").write_bytes(content)
    tools = [t for t in (*TOOLS, "curl", "wget") if t != ("wget" if client == "curl" else "curl")]
    path = bin_dir(tmp_path, tools=tools)
    destination = tmp_path / "etc" / "nginx.conf"
    destination.parent.mkdir()
    digest = hashlib.sha256(content).hexdigest()
    result = run("download-file", f"{url}/nginx.conf", str(destination), digest.upper(),
                 path=path)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    assert destination.read_bytes() == content
    assert oct(destination.stat().st_mode & 0o777) == "0o644"
    assert f"sha256 {digest}" in result.stdout
    assert list(destination.parent.iterdir()) == [destination]


def test_a_wrong_sha256_or_a_missing_file_leaves_the_destination_as_it_was(tmp_path, web):
    root, url = web
    (root / "new.conf").write_text("new\n")
    destination = tmp_path / "etc" / "app.conf"
    destination.parent.mkdir()
    destination.write_text("old\n")
    wrong = run("download-file", f"{url}/new.conf", str(destination), "0" * 64)
    assert wrong.returncode == 1
    assert "sha256 mismatch" in wrong.stderr
    missing = run("download-file", f"{url}/absent.conf", str(destination))
    assert missing.returncode == 1
    assert destination.read_text() == "old\n"
    assert list(destination.parent.iterdir()) == [destination]  # no partial file left


def test_download_file_without_curl_or_wget_says_so(tmp_path):
    result = run("download-file", "https://example.com/x", str(tmp_path / "x"),
                 path=bin_dir(tmp_path))
    assert result.returncode == 1
    assert "neither curl nor wget" in result.stderr


@pytest.mark.skipif(shutil.which("openssl") is None, reason="makes its certificate with openssl")
@pytest.mark.parametrize("client", ["curl", "wget"])
def test_download_file_verifies_https_certificates(tmp_path, client):
    """A server whose certificate no trusted CA signed is refused, and nothing is written."""
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=127.0.0.1", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True, timeout=60)
    (tmp_path / "www").mkdir()
    (tmp_path / "www" / "x").write_text("x")
    handler = functools.partial(SimpleHTTPRequestHandler, directory=str(tmp_path / "www"))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    tools = [t for t in (*TOOLS, "curl", "wget") if t != ("wget" if client == "curl" else "curl")]
    try:
        result = run("download-file", f"https://127.0.0.1:{server.server_address[1]}/x",
                     str(tmp_path / "x"), path=bin_dir(tmp_path, tools=tools))
    finally:
        server.shutdown()
        server.server_close()
    assert result.returncode == 1
    assert "certificate" in result.stderr.lower()
    assert not (tmp_path / "x").exists()


MANAGERS = {
    "apt-get": ("apt-get install -y -q -- nginx curl", "apt-get remove -y -q -- nginx curl"),
    "dnf": ("dnf install -y -- nginx curl", "dnf remove -y -- nginx curl"),
    "yum": ("yum install -y -- nginx curl", "yum remove -y -- nginx curl"),
    "apk": ("apk add --no-progress -- nginx curl", "apk del --no-progress -- nginx curl"),
    "opkg": ("opkg install nginx curl", "opkg remove nginx curl"),
}


@pytest.mark.parametrize("manager", MANAGERS)
def test_package_handlers_use_the_package_manager_the_device_has(tmp_path, manager):
    log = tmp_path / "calls"
    path = bin_dir(tmp_path, {manager: recorder(log), "basename": 'echo "${1##*/}"'})
    assert run("install-packages", "nginx curl", path=path).returncode == 0
    assert run("remove-packages", "nginx", "curl", path=path).returncode == 0
    calls = [line for line in log.read_text().splitlines() if " update" not in line]
    assert calls == list(MANAGERS[manager])


def test_a_failing_install_fails_the_handler(tmp_path):
    path = bin_dir(tmp_path, {"dnf": "exit 100"})
    result = run("install-packages", "nginx", path=path)
    assert result.returncode == 1
    assert "dnf could not install: nginx" in result.stderr


def test_without_a_package_manager_the_handlers_say_so(tmp_path):
    result = run("install-packages", "nginx", path=bin_dir(tmp_path))
    assert result.returncode == 1
    assert "no supported package manager" in result.stderr


@pytest.mark.parametrize(("manager", "query"), [
    ("apt-get", 'case "$*" in *nginx*) printf "install ok installed";; *) exit 1;; esac'),
    ("dnf", 'case "$*" in *nginx*) exit 0;; *) exit 1;; esac'),
    ("apk", 'case "$*" in *nginx*) echo nginx;; *) exit 1;; esac'),
    ("opkg", 'case "$*" in *nginx*) echo "Status: install user installed";; esac'),
])
def test_verify_handlers_tell_installed_from_missing_packages(tmp_path, manager, query):
    tool = {"apt-get": "dpkg-query", "dnf": "rpm", "apk": "apk", "opkg": "opkg"}[manager]
    path = bin_dir(tmp_path, {manager: "exit 0", tool: query})
    installed = run("verify-packages-installed", "nginx", path=path)
    assert (installed.returncode, installed.stdout) == (0, "nginx: installed\n")
    both = run("verify-packages-installed", "nginx", "redis", path=path)
    assert both.returncode == 1
    assert "redis: not installed" in both.stdout and "not installed: redis" in both.stderr
    removed = run("verify-packages-removed", "redis", path=path)
    assert removed.returncode == 0
    still = run("verify-packages-removed", "nginx redis", path=path)
    assert still.returncode == 1
    assert "still installed: nginx" in still.stderr


@pytest.mark.parametrize("action", ["start", "stop", "restart"])
def test_service_handlers_use_systemd(tmp_path, action):
    log = tmp_path / "calls"
    path = bin_dir(tmp_path, {"systemctl": recorder(log), "service": recorder(log),
                              "basename": 'echo "${1##*/}"'})
    result = run(f"{action}-services", "nginx php-fpm@8.2", path=path)
    assert result.returncode == 0, result.stderr
    assert log.read_text().splitlines() == [f"systemctl {action} -- nginx",
                                            f"systemctl {action} -- php-fpm@8.2"]
    assert result.stdout == f"{action}: nginx\n{action}: php-fpm@8.2\n"


def test_service_handlers_fall_back_to_service_and_stop_at_the_first_failure(tmp_path):
    log = tmp_path / "calls"
    path = bin_dir(tmp_path, {"service": recorder(log, '[ "$1" = nginx ] || exit 3'),
                              "basename": 'echo "${1##*/}"'})
    assert run("restart-services", "nginx", path=path).returncode == 0
    failed = run("restart-services", "broken nginx", path=path)
    assert failed.returncode == 1
    assert "could not restart broken" in failed.stderr
    assert log.read_text().splitlines() == ["service nginx restart", "service broken restart"]


def test_reboot_uses_systemctl_then_shutdown(tmp_path):
    log = tmp_path / "calls"
    fakes = {"systemctl": recorder(log), "shutdown": recorder(log), "basename": 'echo "${1##*/}"'}
    assert run("reboot", path=bin_dir(tmp_path, fakes)).returncode == 0
    (tmp_path / "bin" / "systemctl").unlink()
    assert run("reboot", path=str(tmp_path / "bin")).returncode == 0
    assert log.read_text().splitlines() == ["systemctl reboot", "shutdown -r now"]


def test_shutdown_powers_off_after_a_delay_so_the_result_is_reported(tmp_path):
    log = tmp_path / "calls"
    path = bin_dir(tmp_path, {"shutdown": recorder(log), "basename": 'echo "${1##*/}"'})
    assert run("shutdown", path=path).returncode == 0
    assert run("shutdown", "5", path=path).returncode == 0
    assert log.read_text().splitlines() == ["shutdown -h +1", "shutdown -h +5"]


def test_health_check_thresholds(tmp_path):
    zone = tmp_path / "thermal" / "thermal_zone0"
    zone.mkdir(parents=True)
    (zone / "temp").write_text("45000\n")
    (tmp_path / "thermal" / "thermal_zone1").mkdir()
    (tmp_path / "thermal" / "thermal_zone1" / "temp").write_text("52500\n")
    relaxed = ["--thermal-dir", str(tmp_path / "thermal"), "--min-disk-free", "0",
               "--min-memory-free", "0", "--max-load", "1000"]
    ok = run("health-check", *relaxed, "--max-temperature", "60")
    assert ok.returncode == 0, ok.stderr
    assert "temperature: 52.5C (limit <= 60C): ok" in ok.stdout
    hot = run("health-check", *relaxed, "--max-temperature", "50")
    assert hot.returncode == 1
    assert "temperature is 52.5C" in hot.stderr
    full = run("health-check", *relaxed, "--min-disk-free", "100.1")
    assert full.returncode == 1
    assert "disk free on /" in full.stderr
    busy = run("health-check", *relaxed, "--max-load", "0", "--max-temperature", "60")
    loadavg = float(Path("/proc/loadavg").read_text().split()[0])
    assert busy.returncode == (1 if loadavg > 0 else 0)
    memory = run("health-check", *relaxed, "--min-memory-free", "100.1")
    assert memory.returncode == 1 and "memory available" in memory.stderr


def test_health_check_without_thermal_zones_skips_the_temperature(tmp_path):
    result = run("health-check", "--thermal-dir", str(tmp_path), "--min-disk-free", "0",
                 "--min-memory-free", "0", "--max-load", "1000")
    assert result.returncode == 0
    assert "temperature: no thermal zones, not checked" in result.stdout
