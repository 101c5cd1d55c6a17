"""The portal's staged rollouts: stage rows on the execute form, the stage panel with its
buttons, and the rollouts waiting for a person first on the dashboard."""

from __future__ import annotations

import re
import uuid

from job_rows import fan_out, register_fleet
from test_portal import admin, sign_in, viewer  # noqa: F401 - fixtures

from dispatcher import db

DOCUMENT = ('{"version": "1.0", "steps": [{"name": "a", "type": "runCommand",'
            ' "input": {"command": "true"}}]}')
PRESET = {"stage_name": ["canary", "ten-percent", "rest"], "stage_size": ["2", "10%", ""],
          "stage_max_failure": ["0", "5", ""], "stage_soak_minutes": ["", "", ""],
          "stage_after": ["continue", "continue", "continue"]}


def execute(client, csrf, settings, **fields) -> uuid.UUID:
    answer = client.post("/portal/executions/new", data={
        "csrf_token": csrf, "source": "custom", "job_name": "staged", "job_document": DOCUMENT,
        "target_type": "all", **PRESET, **fields})
    assert answer.status_code == 302, answer.get_data(as_text=True)
    job_id = uuid.UUID(answer.headers["Location"].rsplit("/", 1)[1])
    fan_out(job_id, settings)
    return job_id


def test_the_execute_form_builds_stages_from_rows(admin, settings):  # noqa: F811
    client, csrf = admin
    form = client.get("/portal/executions/new").get_data(as_text=True)
    assert 'id="stage-preset"' in form and form.count('name="stage_name"') == 3
    register_fleet(20)
    job_id = execute(client, csrf, settings)
    with db.pool().connection() as conn:
        stored = conn.execute("SELECT stages FROM job_executions WHERE job_id = %s",
                              (job_id,)).fetchone()["stages"]
    assert [(s["name"], s.get("count"), s.get("percent"), s.get("gate", {}).get(
        "max_failure_percent")) for s in stored] == [
        ("canary", 2, None, 0.0), ("ten-percent", None, 10.0, 5.0), ("rest", None, None, None)]


def test_a_bad_stage_row_is_shown_next_to_the_stages(admin):  # noqa: F811
    client, csrf = admin
    register_fleet(2)
    answer = client.post("/portal/executions/new", data={
        "csrf_token": csrf, "source": "custom", "job_name": "x", "job_document": DOCUMENT,
        "target_type": "all", "stage_name": ["a", "b"], "stage_size": ["", "2"],
        "stage_max_failure": ["", ""], "stage_soak_minutes": ["", ""],
        "stage_after": ["continue", "continue"]})
    page = answer.get_data(as_text=True)
    assert answer.status_code == 400 and 'id="stages-error"' in page
    assert "only the last stage may take the rest" in page
    assert page.count('name="stage_name"') == 2  # the rows as they were sent


def test_the_stage_panel_and_its_buttons(admin, viewer, settings):  # noqa: F811
    client, csrf = admin
    register_fleet(20)
    job_id = execute(client, csrf, settings, requires_approval="1")
    page = client.get(f"/portal/executions/{job_id}").get_data(as_text=True)
    assert 'id="rollout-state">Waiting for approval<' in page
    assert [m for m in re.findall(r'data-stage="([^"]+)" data-state="([^"]+)"', page)] == [
        ("canary", "PENDING"), ("ten-percent", "PENDING"), ("rest", "PENDING")]
    assert 'id="rollout-approve"' in page and 'id="rollout-pause"' not in page

    dashboard = client.get("/portal/executions").get_data(as_text=True)
    assert dashboard.index('id="waiting-for-a-person"') < dashboard.index('class="counters"')

    answer = client.post(f"/portal/executions/{job_id}/rollout/approve",
                         data={"csrf_token": csrf}, follow_redirects=True)
    page = answer.get_data(as_text=True)
    assert "Rolling out: stage canary released (approved by admin:" in page
    assert 'data-stage="canary" data-state="RELEASED"' in page
    assert 'id="rollout-pause"' in page and 'id="rollout-promote"' in page
    answer = client.post(f"/portal/executions/{job_id}/rollout/approve",
                         data={"csrf_token": csrf}, follow_redirects=True)
    assert "Not done: Cannot approve" in answer.get_data(as_text=True)
    page = client.post(f"/portal/executions/{job_id}/rollout/pause", data={"csrf_token": csrf},
                       follow_redirects=True).get_data(as_text=True)
    assert 'id="rollout-state">Paused<' in page and 'id="rollout-resume"' in page

    reader, reader_csrf = viewer
    seen = reader.get(f"/portal/executions/{job_id}").get_data(as_text=True)
    assert 'id="rollout-reason"' in seen and 'id="rollout-resume"' not in seen
    refused = reader.post(f"/portal/executions/{job_id}/rollout/resume",
                          data={"csrf_token": reader_csrf})
    assert refused.status_code == 403
