"""Named groups, execute by group, device search, and who may aim a job by inventory."""

from __future__ import annotations

import dataclasses

import pytest
from job_rows import fan_out

DEVICES = "/api/v1/devices"
GROUPS = "/api/v1/groups"
EXECUTE = "/api/v1/jobs/execute"
DOCUMENT = {"version": "1.0", "steps": [
    {"name": "s", "type": "runCommand", "input": {"command": "true"}}]}
BERLIN_PIS = {"device_type": "raspberry-pi", "site": "berlin"}


def register(client, headers, name, device_type="raspberry-pi", **attributes) -> dict:
    response = client.post(DEVICES, headers=headers, json={
        "device_name": name, "device_type": device_type, "attributes": attributes})
    assert response.status_code == 201, response.get_json()
    return response.get_json()


@pytest.fixture
def fleet(client, admin_headers) -> dict:
    return {
        "a": register(client, admin_headers, "a", site="berlin"),
        "b": register(client, admin_headers, "b", site="berlin"),
        "c": register(client, admin_headers, "c", site="muc-1"),
        "d": register(client, admin_headers, "d", device_type="gateway", site="berlin"),
    }


def call(client, headers, method, path, body=None, status=200) -> dict:
    response = client.open(path, method=method, json=body, headers=headers)
    assert response.status_code == status, response.get_json()
    return response.get_json() if response.data else {}


def execute(client, headers, status=201, **target) -> dict:
    return call(client, headers, "POST", EXECUTE, {"job_name": "j", "job_document": DOCUMENT,
                                                   **target}, status=status)


def test_a_dynamic_group_counts_what_its_filter_matches(client, admin_headers, fleet):
    created = call(client, admin_headers, "POST", GROUPS, {
        "name": "berlin-pis", "description": "Pis in Berlin", "filter": BERLIN_PIS}, status=201)
    assert (created["kind"], created["member_count"], created["filter"]) == (
        "dynamic", 2, BERLIN_PIS)
    call(client, admin_headers, "PATCH", f"{GROUPS}/berlin-pis",
         {"filter": {"site": {"$prefix": "muc-"}}})
    shown = call(client, admin_headers, "GET", f"{GROUPS}/berlin-pis")
    assert (shown["member_count"], shown["description"]) == (1, "Pis in Berlin")
    listed = call(client, admin_headers, "GET", GROUPS)
    assert [(g["name"], g["member_count"]) for g in listed["groups"]] == [("berlin-pis", 1)]
    assert listed["total"] == 1


def test_the_group_list_counts_each_listed_group_within_its_budget(client, admin_headers,
                                                                     fleet, monkeypatch):
    from dispatcher.fleet import groups

    call(client, admin_headers, "POST", GROUPS, {"name": "berlin", "filter": {"site": "berlin"}},
         status=201)
    call(client, admin_headers, "POST", GROUPS, {
        "name": "fresh-pis", "filter": {"device_type": "raspberry-pi",
                                        "system.created_at": {"$gte": "-P1D"}}}, status=201)
    call(client, admin_headers, "POST", GROUPS,
         {"name": "picked", "devices": [fleet["c"]["uuid"]]}, status=201)
    listed = call(client, admin_headers, "GET", GROUPS)["groups"]
    assert [(g["name"], g["member_count"]) for g in listed] == [
        ("berlin", 3), ("fresh-pis", 3), ("picked", 1)]
    # Past the page's budget, a group is listed without a count; its own page still counts it.
    monkeypatch.setattr(groups, "LIST_COUNT_BUDGET_MS", 0)
    listed = call(client, admin_headers, "GET", GROUPS)["groups"]
    assert [g["member_count"] for g in listed] == [None, None, None]
    assert call(client, admin_headers, "GET", f"{GROUPS}/berlin")["member_count"] == 3


def test_a_static_group_lists_its_devices(client, admin_headers, fleet):
    members = [fleet["a"]["uuid"], fleet["d"]["uuid"], fleet["a"]["uuid"]]
    created = call(client, admin_headers, "POST", GROUPS,
                   {"name": "hand-picked", "devices": members}, status=201)
    assert (created["kind"], created["member_count"]) == ("static", 2)
    assert sorted(created["devices"]) == sorted({fleet["a"]["uuid"], fleet["d"]["uuid"]})
    call(client, admin_headers, "PATCH", f"{GROUPS}/hand-picked",
         {"devices": [fleet["c"]["uuid"]]})
    assert call(client, admin_headers, "GET", f"{GROUPS}/hand-picked")["devices"] == [
        fleet["c"]["uuid"]]
    # Deleting a device takes it out of the group.
    call(client, admin_headers, "DELETE", f"{DEVICES}/{fleet['c']['uuid']}")
    assert call(client, admin_headers, "GET", f"{GROUPS}/hand-picked")["member_count"] == 0


def test_bad_groups_answer_400_or_409_naming_the_problem(client, admin_headers, fleet):
    def refused(body, status=400) -> dict:
        return call(client, admin_headers, "POST", GROUPS, body, status=status)

    both = refused({"name": "x", "filter": BERLIN_PIS, "devices": [fleet["a"]["uuid"]]})
    assert set(both["errors"]) == {"filter", "devices"}
    assert set(refused({"name": "x"})["errors"]) == {"filter", "devices"}
    assert refused({"name": "x", "filter": {"site": {"$in": []}}})["errors"] == {
        "filter": {"site.$in": ["Must be a non-empty list of values."]}}
    assert "name" in refused({"name": "no spaces", "filter": BERLIN_PIS})["errors"]
    unknown = "00000000-0000-0000-0000-000000000001"
    assert "devices" in refused({"name": "x", "devices": [unknown]})["errors"]
    call(client, admin_headers, "POST", GROUPS, {"name": "x", "filter": BERLIN_PIS}, status=201)
    refused({"name": "x", "filter": BERLIN_PIS}, status=409)
    assert "devices" in call(client, admin_headers, "PATCH", f"{GROUPS}/x",
                             {"devices": [fleet["a"]["uuid"]]}, status=400)["errors"]
    call(client, admin_headers, "GET", f"{GROUPS}/nope", status=404)
    call(client, admin_headers, "PATCH", f"{GROUPS}/nope", {"description": "d"}, status=404)


def test_execute_by_group_and_delete_only_when_no_job_runs_on_it(client, admin_headers, fleet,
                                                                 settings):
    call(client, admin_headers, "POST", GROUPS, {"name": "berlin-pis", "filter": BERLIN_PIS},
         status=201)
    preview = call(client, admin_headers, "POST", f"{EXECUTE}/preview", {
        "job_name": "j", "job_document": DOCUMENT, "target_type": "group",
        "group": "berlin-pis"})
    assert (preview["total_devices"], preview["target_group"]) == (2, "berlin-pis")
    job = execute(client, admin_headers, target_type="group", group="berlin-pis")["job"]
    assert (job["total_devices"], job["target_group"]) == (2, "berlin-pis")
    fan_out(job["job_id"], settings)
    rows = call(client, admin_headers, "GET", f"/api/v1/jobs/executions/{job['job_id']}/devices")
    assert {r["device_uuid"] for r in rows["device_statuses"]} == {fleet["a"]["uuid"],
                                                                  fleet["b"]["uuid"]}
    busy = call(client, admin_headers, "DELETE", f"{GROUPS}/berlin-pis", status=409)
    assert "unfinished" in busy["message"]
    call(client, admin_headers, "POST", f"/api/v1/jobs/executions/{job['job_id']}/cancel", {})
    call(client, admin_headers, "DELETE", f"{GROUPS}/berlin-pis", status=204)
    call(client, admin_headers, "GET", f"{GROUPS}/berlin-pis", status=404)
    assert "group" in execute(client, admin_headers, status=404, target_type="group",
                              group="berlin-pis")["errors"]
    execute(client, admin_headers, status=400, target_type="group", group="berlin-pis",
            target_filter=BERLIN_PIS)
    execute(client, admin_headers, status=400, target_type="all", group="berlin-pis")


def test_a_continuous_job_on_a_dynamic_group_follows_inventory_and_filter_changes(
        client, admin_headers, fleet, settings):
    call(client, admin_headers, "POST", GROUPS, {"name": "big-disks", "filter": {
        "inventory.disk_free_mb": {"$gte": 500}}}, status=201)
    job = execute(client, admin_headers, target_type="group", group="big-disks",
                  execution_type="continuous")["job"]
    assert job["total_devices"] == 0
    fan_out(job["job_id"], settings)
    device = fleet["c"]
    token = {"Authorization": f"Bearer {device['device_token']}"}

    def statuses() -> dict:
        rows = call(client, admin_headers, "GET",
                    f"/api/v1/jobs/executions/{job['job_id']}/devices")["device_statuses"]
        return {r["device_uuid"]: r["status"] for r in rows}

    call(client, token, "PUT", f"{DEVICES}/{device['uuid']}/inventory",
         {"data": {"disk_free_mb": 900}})
    assert statuses() == {device["uuid"]: "QUEUED"}
    # The group's filter changes: the device no longer belongs, and leaves the job.
    call(client, admin_headers, "PATCH", f"{GROUPS}/big-disks",
         {"filter": {"inventory.disk_free_mb": {"$gte": 1000}}})
    assert statuses() == {device["uuid"]: "REMOVED"}


def test_search_answers_the_count_the_preview_gives(client, admin_headers, viewer_headers,
                                                    fleet):
    target = {"$or": [{"site": "berlin"}, {"site": {"$prefix": "muc-"}}],
              "$not": {"system.type": "gateway"}}
    found = call(client, viewer_headers, "POST", f"{DEVICES}/search",
                 {"filter": target, "limit": 2})
    assert (found["total"], len(found["devices"])) == (3, 2)
    rest = call(client, viewer_headers, "POST", f"{DEVICES}/search",
                {"filter": target, "limit": 2, "offset": 2})
    assert {d["device_name"] for d in found["devices"] + rest["devices"]} == {"a", "b", "c"}
    preview = call(client, admin_headers, "POST", f"{EXECUTE}/preview", {
        "job_name": "j", "job_document": DOCUMENT, "target_type": "group",
        "target_filter": target})
    assert preview["total_devices"] == found["total"]
    assert call(client, viewer_headers, "POST", f"{DEVICES}/search", {})["total"] == 4
    bad = call(client, viewer_headers, "POST", f"{DEVICES}/search",
               {"filter": {"$nor": []}}, status=400)
    assert bad["errors"] == {"filter": {"$nor": [
        "Unknown operator; a filter's keys are fields or $and, $or, $not."]}}


def test_inventory_targets_can_be_forbidden_for_jobs_held_for_approval(settings, fleet,
                                                                       admin_headers):
    from api.app import create_app

    strict = create_app(dataclasses.replace(settings, targeting_inventory_allowed=False))
    client = strict.test_client()
    by_inventory = {"inventory.os.id": "debian"}
    refused = execute(client, admin_headers, status=400, target_type="group",
                      target_filter=by_inventory, requires_approval=True)
    assert "TARGETING_INVENTORY_ALLOWED" in refused["message"]
    call(client, admin_headers, "POST", GROUPS, {"name": "debian", "filter": by_inventory},
         status=201)
    assert "group" in execute(client, admin_headers, status=400, target_type="group",
                              group="debian", requires_approval=True)["errors"]
    # Attribute targets stay allowed; so do inventory targets of ordinary jobs.
    execute(client, admin_headers, status=201, target_type="group",
            target_filter={"site": "berlin"}, requires_approval=True)
    execute(client, admin_headers, status=201, target_type="group", group="debian",
            execution_type="continuous")


def test_a_stage_filter_speaks_the_same_language(client, admin_headers, fleet, settings):
    from dispatcher import db

    for name, model in (("a", "Raspberry Pi 3"), ("c", "Raspberry Pi 4 Model B")):
        device = fleet[name]
        call(client, {"Authorization": f"Bearer {device['device_token']}"}, "PUT",
             f"{DEVICES}/{device['uuid']}/inventory", {"data": {"model": model}})
    job = execute(client, admin_headers, target_type="group", target_filter={
        "system.type": "raspberry-pi"}, stages=[
        {"name": "pi4", "count": 1,
         "target_filter": {"inventory.model": {"$prefix": "Raspberry Pi 4"}}},
        {"name": "rest"}])["job"]
    fan_out(job["job_id"], settings)
    with db.pool().connection() as conn:
        staged = {str(r["device_uuid"]): r["stage"] for r in conn.execute(
            "SELECT device_uuid, stage FROM device_job_status WHERE job_id = %s",
            (job["job_id"],)).fetchall()}
    assert staged == {fleet["c"]["uuid"]: 0, fleet["a"]["uuid"]: 1, fleet["b"]["uuid"]: 1}
    bad = execute(client, admin_headers, status=400, target_type="all", stages=[
        {"name": "x", "count": 1, "target_filter": {"inventory.model": {"$prefix": 4}}},
        {"name": "rest"}])
    assert "stages" in bad["errors"]
