"""``dispatcher jobs|templates|handlers|devices|login`` against the real API (gunicorn), a
Celery worker and real agents, run with the server's libraries blocked (tests/operator_cli.py).
"""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
from agent_processes import start_agent
from operator_cli import operator_env, run, run_on_terminal
from processes import free_port
from suite_constants import TEST_ADMIN_TOKEN

from client import DeviceJobsClient

pytestmark = pytest.mark.slow

GREETING_TEMPLATE = {
    "name": "greet", "category": "maintenance", "parameters": {"GREETING": "hello"},
    "job_document": {"version": "1.0", "includeStdOut": True, "steps": [{
        "name": "Greet", "type": "runCommand",
        # A device whose $DEVICE_HOME holds a file named "fail" fails the job.
        "input": {"command": "sh,-c,echo {{GREETING}}; test ! -e $DEVICE_HOME/fail"}}]},
}


@pytest.fixture
def stack(settings, server_processes, tmp_path):
    fast = replace(settings, poll_after_s=1)
    server_processes.start_worker(fast)
    api = server_processes.start_api(fast)
    env = operator_env(api.url, TEST_ADMIN_TOKEN, tmp_path / "no-config.json")
    return DeviceJobsClient(api.url, TEST_ADMIN_TOKEN), env


def test_a_group_rollout_applied_from_a_file_and_watched_exits_by_the_outcome(
    stack, server_processes, tmp_path
):
    api, env = stack
    pis = [api.create_device({"device_name": f"pi-{i}", "device_type": "cli-pi"})
           for i in range(2)]
    api.create_device({"device_name": "gateway", "device_type": "gateway"})  # not targeted
    for pi in pis:
        start_agent(server_processes, api.url, pi, tmp_path / pi["device_name"])
    template_file = tmp_path / "greet.json"
    template_file.write_text(json.dumps(GREETING_TEMPLATE))

    assert run(env, "templates", "apply", "-f", str(template_file)).stdout.endswith("created\n")
    again = run(env, "templates", "apply", "-f", str(template_file))
    assert again.returncode == 0 and again.stdout.endswith("unchanged\n")
    listed = json.loads(run(env, "templates", "list", "--output", "json").stdout)
    assert [t["name"] for t in listed] == ["greet"]

    execute = ["jobs", "execute", "--template", "greet", "--group", "device_type=cli-pi",
               "--param", "GREETING=hi"]
    dry = run(env, *execute, "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "2 device(s) match" in dry.stdout and "echo hi;" in dry.stdout
    assert api.list_executions()["total"] == 0

    code, drawn = run_on_terminal(env, *execute, "--watch", "--interval", "0.3",
                                  "--timeout", "60")
    assert code == 0, drawn
    assert "\r\x1b[2K" in drawn and "[########################] 2/2 ✓2 ✗0" in drawn
    assert drawn.rstrip().endswith("SUCCEEDED")

    (tmp_path / "pi-1" / "fail").touch()
    failed = run(env, *execute, "--watch", "--interval", "0.3", "--timeout", "60")
    assert failed.returncode == 3, failed.stdout + failed.stderr
    assert "\x1b" not in failed.stdout
    last = failed.stdout.splitlines()[-1]
    assert " FAILED: 1 succeeded, 1 failed, 0 in progress, 0 queued of 2" in last
    job_id = last.split()[1]
    output = run(env, "jobs", "output", job_id, str(pis[0]["uuid"]))
    assert output.stdout == "hi\n" and "SUCCEEDED exit_code=0" in output.stderr
    shown = json.loads(run(env, "jobs", "show", job_id, "-o", "json").stdout)
    assert shown["job"]["failed_devices"] == 1 and len(shown["device_statuses"]) == 2
    table = run(env, "jobs", "show", job_id, "--status", "FAILED").stdout
    assert "\nfailed_devices       1\n" in table and "devices 1-1 of 1:" in table
    assert "pi-1" in table
    assert "Greet" in run(env, "templates", "show", "greet").stdout
    events = json.loads(run(env, "jobs", "events", job_id, "-o", "json").stdout)
    assert events["events"][0]["action"] == "job.created"
    assert run(env, "templates", "delete", "greet").stdout.startswith("template greet (id ")
    assert run(env, "templates", "list").stdout == "(none)\n"


def test_watch_timeout_and_cancel_have_their_own_exit_codes(stack, tmp_path):
    api, env = stack
    device = api.create_device({"device_name": "offline-pi", "device_type": "pi"})
    other = api.create_device({"device_name": "other-pi", "device_type": "pi"})
    document = tmp_path / "doc.json"
    document.write_text(json.dumps({"version": "1.0", "steps": [
        {"name": "df", "type": "runCommand", "input": {"command": "df"}}]}))
    created = run(env, "jobs", "execute", "--document", str(document), "--name", "df",
                  "--device", str(device["uuid"]), str(other["uuid"]), "--rollout-rate", "10",
                  "--retries", "1",
                  "--timeout-minutes", "5", "--output", "json")
    job = json.loads(created.stdout)["job"]
    stored = api.get_execution(job["job_id"])["job"]
    assert stored["rollout_config"] == {"maximum_per_minute": 10}
    assert stored["timeout_config"] == {"in_progress_timeout_minutes": 5}

    policies = tmp_path / "policies.json"
    policies.write_text(json.dumps({"abort_config": {"criteria_list": [{
        "failure_type": "ALL", "action": "CANCEL", "threshold_percentage": 10,
        "min_number_of_executed_devices": 1}]}, "rollout_config": {"maximum_per_minute": 1}}))
    preview = json.loads(run(env, "jobs", "execute", "--document", str(document), "--name", "df",
                             "--all", "--policies", str(policies), "--rollout-rate", "7",
                             "--cron", "0 3 * * *", "--timezone", "Europe/Berlin",
                             "--start-time", "2999-01-01T00:00:00Z", "--dry-run", "-o",
                             "json").stdout)
    assert preview["abort_config"]["criteria_list"][0]["threshold_percentage"] == 10
    assert preview["rollout_config"] == {"maximum_per_minute": 7}
    assert preview["execution_type"] == "recurring" and preview["status"] == "SCHEDULED"
    assert preview["schedule"]["timezone"] == "Europe/Berlin"
    assert preview["scheduling_config"]["start_time"].startswith("2999-01-01")
    continuous = run(env, "jobs", "execute", "--document", str(document), "--name", "df",
                     "--device", str(device["uuid"]), "--continuous", "--dry-run")
    assert continuous.returncode == 6 and "execution_type: A continuous execution targets" in \
        one_line_error(continuous)
    policies.write_text("[]")
    not_object = run(env, "jobs", "execute", "--document", str(document), "--all",
                     "--policies", str(policies))
    assert not_object.returncode == 2 and "a JSON object" in one_line_error(not_object)

    waited = run(env, "jobs", "watch", job["job_id"], "--timeout", "1", "--interval", "0.2")
    assert waited.returncode == 5 and "watch timed out" in waited.stdout
    one = run(env, "jobs", "cancel", job["job_id"], "--device", str(other["uuid"]))
    assert one.stdout == f"device {other['uuid']}: CANCELED\n", one.stderr
    assert run(env, "jobs", "cancel", job["job_id"], "--force").returncode == 0
    canceled = run(env, "jobs", "watch", job["job_id"])
    assert canceled.returncode == 4 and "CANCELED" in canceled.stdout
    refused = run(env, "jobs", "retry", job["job_id"])
    assert refused.returncode == 1 and one_line_error(refused).startswith("error: 409 ")
    assert json.loads(run(env, "jobs", "runs", job["job_id"], "-o", "json").stdout)["runs"] == []

    listed = run({**env, "COLUMNS": "60"}, "jobs", "list")
    assert listed.returncode == 0 and all(len(line) <= 60 for line in listed.stdout.splitlines())
    assert "JOB_ID" in listed.stdout
    devices = json.loads(run(env, "devices", "list", "-o", "json").stdout)
    assert sorted(d["device_name"] for d in devices) == ["offline-pi", "other-pi"]
    assert "offline-pi" in run(env, "devices", "show", str(device["uuid"])).stdout

    script = tmp_path / "hello.sh"
    script.write_text("echo hello\n")
    handler = ["handlers", "apply", "-f", str(script), "--name", "hello", "--type", "bash"]
    assert " created " in run(env, *handler).stdout
    assert " unchanged " in run(env, *handler).stdout
    assert json.loads(run(env, "handlers", "show", "hello", "-o", "json").stdout)[
        "script_content"] == "echo hello\n"
    assert run(env, "handlers", "delete", "hello").returncode == 0
    gone = run(env, "handlers", "show", "hello")
    assert gone.returncode == 1 and "404" in one_line_error(gone)


def one_line_error(result) -> str:
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "Traceback" not in result.stderr
    return lines[0]


def test_each_error_is_one_line_with_its_own_exit_code(stack, viewer_headers, tmp_path):
    api, env = stack
    nowhere = tmp_path / "no-config.json"
    no_url = run(operator_env(None, "t", nowhere), "jobs", "list")
    assert no_url.returncode == 8 and "no API URL" in one_line_error(no_url)
    no_token = run(operator_env(api.url, None, nowhere), "templates", "list")
    assert no_token.returncode == 8 and "no API token" in one_line_error(no_token)

    bad_token = run({**env, "DEVICE_JOBS_TOKEN": "wrong"}, "devices", "list")
    assert bad_token.returncode == 7
    assert "401 Invalid or revoked token" in one_line_error(bad_token)
    viewer = {**env, "DEVICE_JOBS_TOKEN": viewer_headers["Authorization"].split()[1]}
    forbidden = run(viewer, "jobs", "execute", "--document", "-", "--name", "x", "--all",
                    stdin='{"version": "1.0", "steps": []}')
    assert forbidden.returncode == 7 and "403" in one_line_error(forbidden)

    api.create_device({"device_name": "pi", "device_type": "pi"})
    invalid = run(env, "jobs", "execute", "--document", "-", "--all", "--rollout-rate", "0",
                  "--name", "x", stdin='{"version": "1.0", "steps": [{"name": "a", '
                  '"type": "runCommand", "input": {"command": "true"}}]}')
    assert invalid.returncode == 6
    assert "rollout_config.maximum_per_minute: Must be" in one_line_error(invalid)

    unreachable = run({**env, "DEVICE_JOBS_URL": f"http://127.0.0.1:{free_port()}"},
                      "jobs", "list")
    assert unreachable.returncode == 9
    assert "cannot reach the API" in one_line_error(unreachable)
    no_scheme = run({**env, "DEVICE_JOBS_URL": "jobs.example.com"}, "jobs", "list")
    assert no_scheme.returncode == 8 and "not a valid API URL" in one_line_error(no_scheme)
    missing = run(env, "templates", "show", "no-such-template")
    assert missing.returncode == 2 and "no template named" in one_line_error(missing)


def test_login_saves_url_and_token_mode_600_and_the_environment_wins(stack, tmp_path):
    api, _ = stack
    config = tmp_path / "conf" / "config.json"
    bare = operator_env(None, None, config)
    refused = run(bare, "login", "--url", api.url, "--token", "wrong")
    assert refused.returncode == 7 and not config.exists()
    logged_in = run(bare, "login", "--url", api.url, stdin=TEST_ADMIN_TOKEN + "\n")
    assert logged_in.returncode == 0, logged_in.stderr
    assert config.stat().st_mode & 0o777 == 0o600
    assert json.loads(config.read_text()) == {"url": api.url, "token": TEST_ADMIN_TOKEN}
    assert run(bare, "jobs", "list", "-o", "json").returncode == 0
    elsewhere = {**bare, "DEVICE_JOBS_URL": f"http://127.0.0.1:{free_port()}"}
    assert run(elsewhere, "jobs", "list").returncode == 9


def test_the_blocker_blocks_and_the_server_commands_still_parse(tmp_path):
    env = operator_env(None, None, tmp_path / "none.json")
    blocked = run(env, "migrate")
    assert blocked.returncode != 0 and "not installed with the client extra: psycopg" in \
        blocked.stderr
    helped = run(env, "--help")
    assert helped.returncode == 0
    for command in ("jobs", "templates", "handlers", "devices", "login", "serve", "worker"):
        assert command in helped.stdout
    assert run(env, "jobs", "execute", "--help").returncode == 0
