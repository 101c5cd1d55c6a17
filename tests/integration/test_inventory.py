"""Device inventory: a device reports its facts with its own token; they stay apart from the
operator's attributes, count as a sighting, and move the device through continuous jobs."""

from __future__ import annotations

import json

from job_rows import fan_out

DEVICES = "/api/v1/devices"
EXECUTE = "/api/v1/jobs/execute"
DOCUMENT = {"version": "1.0", "steps": [
    {"name": "s", "type": "runCommand", "input": {"command": "true"}}]}
FACTS = {"os": {"id": "debian", "version_id": "12"}, "disk_free_mb": 812, "arch": "aarch64"}


def register(client, headers, **body) -> dict:
    body.setdefault("device_name", "pi")
    response = client.post(DEVICES, json=body, headers=headers)
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def bearer(device: dict) -> dict[str, str]:
    return {"Authorization": f"Bearer {device['device_token']}"}


def report(client, device, data, mode=None, headers=None, status=200) -> dict:
    body = {"data": data} if mode is None else {"data": data, "mode": mode}
    response = client.put(f"{DEVICES}/{device['uuid']}/inventory", json=body,
                          headers=headers or bearer(device))
    assert response.status_code == status, response.get_json()
    return response.get_json()


def shown(client, admin_headers, device) -> dict:
    return client.get(f"{DEVICES}/{device['uuid']}", headers=admin_headers).get_json()


def test_a_report_is_shown_apart_from_the_attributes_and_is_a_sighting(client, admin_headers):
    device = register(client, admin_headers, device_type="raspberry-pi",
                      attributes={"site": "berlin"})
    assert shown(client, admin_headers, device)["last_seen_at"] is None
    stored = report(client, device, {**FACTS, "site": "paris", "device_type": "gateway"})
    assert stored["changed"] is True
    record = shown(client, admin_headers, device)
    assert record["inventory"] == {**FACTS, "site": "paris", "device_type": "gateway"}
    # The device's word never reaches what the operator set.
    assert (record["attributes"], record["device_type"]) == ({"site": "berlin"}, "raspberry-pi")
    assert record["inventory_updated_at"] is not None
    assert record["last_seen_at"] is not None


def test_merge_is_deep_and_null_removes_a_key(client, admin_headers):
    device = register(client, admin_headers)
    report(client, device, FACTS)
    report(client, device, {"os": {"version_id": "13", "codename": "trixie"}, "arch": None},
           mode="merge")
    assert shown(client, admin_headers, device)["inventory"] == {
        "os": {"id": "debian", "version_id": "13", "codename": "trixie"}, "disk_free_mb": 812}
    report(client, device, {"kernel": "6.1"}, mode="replace")
    assert shown(client, admin_headers, device)["inventory"] == {"kernel": "6.1"}


def test_an_unchanged_report_changes_nothing_but_the_sighting(client, admin_headers):
    device = register(client, admin_headers)
    first = report(client, device, FACTS)
    again = report(client, device, json.loads(json.dumps(FACTS)))
    assert again["changed"] is False
    assert again["inventory_updated_at"] == first["inventory_updated_at"]


def test_only_the_device_itself_may_report(client, admin_headers, viewer_headers):
    device = register(client, admin_headers)
    other = register(client, admin_headers, device_name="other")
    report(client, device, FACTS, headers=bearer(other), status=403)
    report(client, device, FACTS, headers=admin_headers, status=403)
    report(client, device, FACTS, headers=viewer_headers, status=403)
    report(client, device, FACTS, headers={"Authorization": "Bearer nope"}, status=401)
    assert shown(client, admin_headers, device)["inventory"] == {}


def test_limits_answer_with_the_reason(client, admin_headers):
    device = register(client, admin_headers)
    report(client, device, {f"k{i}": i for i in range(100)})
    too_many = report(client, device, {"nested": {f"k{i}": i for i in range(101)}}, status=400)
    assert "at most 100" in json.dumps(too_many["errors"])
    # A merge that would grow the inventory past the limit is refused too.
    grown = report(client, device, {"extra": 1}, mode="merge", status=400)
    assert "at most 100" in grown["message"]
    huge = report(client, device, {"blob": "x" * 40000}, status=413)
    assert "32768" in huge["message"]
    dotted = report(client, device, {"os.id": "debian"}, status=400)
    assert "nest objects" in json.dumps(dotted["errors"])
    report(client, device, {"$where": 1}, status=400)
    report(client, device, {"x": 1}, mode="append", status=400)
    report(client, device, [1], status=400)


def test_a_continuous_job_follows_a_device_whose_inventory_changed(client, admin_headers,
                                                                  settings):
    device = register(client, admin_headers, device_type="raspberry-pi")
    target = {"device_type": "raspberry-pi", "inventory.os.version_id": {"$in": ["12"]},
              "inventory.disk_free_mb": {"$gte": 500}}
    # No device reports these facts yet: a continuous job may still start, and waits.
    created = client.post(EXECUTE, headers=admin_headers, json={
        "job_name": "follow", "job_document": DOCUMENT, "target_type": "group",
        "target_filter": target, "execution_type": "continuous"})
    assert created.status_code == 201, created.get_json()
    job_id = created.get_json()["job"]["job_id"]
    fan_out(job_id, settings)
    next_job = f"{DEVICES}/{device['uuid']}/jobs/next"

    def polled() -> dict:
        return client.get(next_job, headers=bearer(device)).get_json()

    assert polled() == {"message": "No pending jobs", **_poll_hint(polled())}
    report(client, device, FACTS)
    assert polled()["jobId"] == job_id
    report(client, device, {"disk_free_mb": 100}, mode="merge")
    assert "jobId" not in polled()
    rows = client.get(f"/api/v1/jobs/executions/{job_id}/devices",
                      headers=admin_headers).get_json()
    assert [r["status"] for r in rows["device_statuses"]] == ["REMOVED"]


def _poll_hint(answer: dict) -> dict:
    return {k: v for k, v in answer.items() if k == "pollAfterSeconds"}


def test_a_report_racing_another_is_merged_again_and_loses_nothing(client, admin_headers,
                                                                      monkeypatch):
    from dispatcher.fleet import inventory

    device = register(client, admin_headers)
    report(client, device, {"arch": "aarch64"})
    plain_merge = inventory.merged
    raced = []

    def merged_while_another_lands(current: dict, changes: dict) -> dict:
        # The first time, another report of the device is stored between the read and the
        # store: the store finds the inventory changed and the report is merged again.
        if not raced:
            raced.append(current)
            report(client, device, {"kernel": "6.1"}, "merge")
        return plain_merge(current, changes)

    monkeypatch.setattr(inventory, "merged", merged_while_another_lands)
    answer = report(client, device, {"disk_free_mb": 10}, "merge")
    assert raced == [{"arch": "aarch64"}]
    assert answer["inventory"] == {"arch": "aarch64", "kernel": "6.1", "disk_free_mb": 10}
    assert shown(client, admin_headers, device)["inventory"] == answer["inventory"]
