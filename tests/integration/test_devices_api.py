"""Devices API: register, list by group filter, edit, delete, rotate tokens; all audited."""

from __future__ import annotations

import json
import uuid
from urllib.parse import quote

from job_rows import insert_job, job_row, register_fleet, set_row_status, target_events

from dispatcher.fleet import tokens

DEVICES = "/api/v1/devices"


def register(client, headers, **body) -> dict:
    body.setdefault("device_name", "pi")
    response = client.post(DEVICES, json=body, headers=headers)
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def actions(device_uuid: str) -> list[str]:
    return [event["action"] for event in target_events("device", device_uuid)]


def test_register_returns_the_device_and_a_working_token_once(client, admin_headers):
    device = register(client, admin_headers, device_name="kitchen-pi",
                      attributes={"environment": "production"})
    assert device["device_type"] == "generic"
    assert device["attributes"] == {"environment": "production"}
    uuid.UUID(device["uuid"])
    principal = tokens.authenticate(device["device_token"])
    assert principal.kind == "device" and str(principal.device_uuid) == device["uuid"]
    fetched = client.get(f"{DEVICES}/{device['uuid']}", headers=admin_headers).get_json()
    assert "device_token" not in fetched
    assert fetched["device_name"] == "kitchen-pi"
    assert actions(device["uuid"]) == ["device.created"]


def test_register_with_a_chosen_uuid_and_duplicate_is_409(client, admin_headers):
    chosen = "8479359e-dbeb-4858-813c-e8a9008dde04"
    device = register(client, admin_headers, uuid=chosen, device_type="raspberry-pi")
    assert device["uuid"] == chosen
    again = client.post(DEVICES, json={"uuid": chosen, "device_name": "other"},
                        headers=admin_headers)
    assert again.status_code == 409
    assert again.get_json()["code"] == 409


def test_register_validation_names_each_field(client, admin_headers):
    response = client.post(DEVICES, json={
        "uuid": "not-a-uuid", "device_type": "has space", "attributes": ["a"], "colour": "red",
    }, headers=admin_headers)
    assert response.status_code == 400
    assert set(response.get_json()["errors"]) == {
        "uuid", "device_name", "device_type", "attributes", "colour",
    }
    for attributes in ({"device_type": "x"}, {"rack": None}, {"k\x00": "v"}):
        response = client.post(DEVICES, json={"device_name": "pi", "attributes": attributes},
                               headers=admin_headers)
        assert response.status_code == 400
        assert "attributes" in response.get_json()["errors"]


def test_list_filters_by_type_and_attribute_containment(client, admin_headers):
    prod_pi = register(client, admin_headers, device_name="a", device_type="raspberry-pi",
                       attributes={"environment": "production", "rack": "r1"})
    register(client, admin_headers, device_name="b", device_type="raspberry-pi",
             attributes={"environment": "staging"})
    register(client, admin_headers, device_name="c", device_type="jetson",
             attributes={"environment": "production"})

    def names(query: str) -> list[str]:
        response = client.get(f"{DEVICES}{query}", headers=admin_headers)
        assert response.status_code == 200, response.get_json()
        return sorted(d["device_name"] for d in response.get_json()["devices"])

    assert names("") == ["a", "b", "c"]
    assert names("?device_type=raspberry-pi") == ["a", "b"]
    production = quote(json.dumps({"environment": "production"}))
    assert names(f"?filter={production}") == ["a", "c"]
    assert names(f"?filter={production}&device_type=raspberry-pi") == ["a"]
    group = quote(json.dumps({"device_type": "raspberry-pi", "environment": "production"}))
    assert names(f"?filter={group}") == ["a"]
    assert names("?filter=" + quote(json.dumps({"rack": "r9"}))) == []
    assert prod_pi["device_name"] == "a"


def test_list_pages_and_counts(client, admin_headers):
    for i in range(5):
        register(client, admin_headers, device_name=f"pi-{i}")
    page = client.get(f"{DEVICES}?limit=2&offset=2", headers=admin_headers).get_json()
    assert (page["total"], page["limit"], page["offset"], len(page["devices"])) == (5, 2, 2, 2)
    past_end = client.get(f"{DEVICES}?limit=2&offset=10", headers=admin_headers).get_json()
    assert past_end["devices"] == [] and past_end["total"] == 5
    uuids = []
    for offset in range(0, 5, 2):
        body = client.get(f"{DEVICES}?limit=2&offset={offset}", headers=admin_headers).get_json()
        uuids += [d["uuid"] for d in body["devices"]]
    assert len(set(uuids)) == 5


def test_list_refuses_bad_filters_and_limits(client, admin_headers):
    for query, field in [
        ("?filter=not-json", "filter"),
        ("?filter=" + quote("[1,2]"), "filter"),
        ("?filter=" + quote('{"device_type": 5}'), "filter"),
        ("?filter=" + quote('{"device_type": "a"}') + "&device_type=b", "device_type"),
        ("?limit=0", "limit"),
        ("?limit=501", "limit"),
        ("?offset=-1", "offset"),
        ("?limit=abc", "limit"),
    ]:
        response = client.get(f"{DEVICES}{query}", headers=admin_headers)
        assert response.status_code == 400, query
        assert field in response.get_json()["errors"], (query, response.get_json())


def test_patch_merges_attributes_and_answers_what_changed(client, admin_headers):
    device = register(client, admin_headers, attributes={"environment": "staging", "rack": "r1"})
    url = f"{DEVICES}/{device['uuid']}"
    response = client.patch(url, json={
        "device_name": "renamed", "attributes": {"environment": "production", "rack": None},
    }, headers=admin_headers)
    assert response.status_code == 200
    body = response.get_json()
    assert body["device_name"] == "renamed"
    assert body["attributes"] == {"environment": "production"}
    assert body["changed"] == {
        "device_name": {"from": "pi", "to": "renamed"},
        "attributes": {"from": {"environment": "staging", "rack": "r1"},
                       "to": {"environment": "production"}},
    }
    unchanged = client.patch(url, json={"device_name": "renamed"}, headers=admin_headers)
    assert unchanged.get_json()["changed"] == {}
    assert actions(device["uuid"]) == ["device.created", "device.updated"]


def test_patch_and_delete_of_unknown_device_are_404(client, admin_headers):
    missing = f"{DEVICES}/{uuid.uuid4()}"
    assert client.patch(missing, json={"device_name": "x"}, headers=admin_headers).status_code \
        == 404
    assert client.delete(missing, headers=admin_headers).status_code == 404
    assert client.get(missing, headers=admin_headers).status_code == 404
    assert client.post(f"{missing}/token", headers=admin_headers).status_code == 404
    assert client.get(f"{DEVICES}/not-a-uuid", headers=admin_headers).status_code == 404


def test_patch_refuses_bad_fields(client, admin_headers):
    device = register(client, admin_headers)
    url = f"{DEVICES}/{device['uuid']}"
    response = client.patch(url, json={"device_name": "", "uuid": str(uuid.uuid4())},
                            headers=admin_headers)
    assert response.status_code == 400
    assert set(response.get_json()["errors"]) == {"device_name", "uuid"}


def test_delete_answers_the_device_and_its_token_stops_working(client, admin_headers):
    device = register(client, admin_headers, device_name="gone")
    response = client.delete(f"{DEVICES}/{device['uuid']}", headers=admin_headers)
    assert response.status_code == 200
    assert response.get_json()["device_name"] == "gone"
    assert response.get_json()["removed_job_statuses"] == 0
    assert client.get(f"{DEVICES}/{device['uuid']}", headers=admin_headers).status_code == 404
    assert tokens.authenticate(device["device_token"]) is None
    assert actions(device["uuid"]) == ["device.created", "device.deleted"]


def test_deleting_the_last_pending_device_of_a_job_completes_the_job(client, admin_headers):
    done, waiting, running = register_fleet(3)
    job_id = insert_job([done, waiting, running])
    set_row_status(job_id, done, "SUCCEEDED")
    set_row_status(job_id, running, "IN_PROGRESS")
    for device in (waiting, running):
        assert client.delete(f"{DEVICES}/{device.uuid}", headers=admin_headers).status_code == 200
    row = job_row(job_id)
    assert (row["status"], row["succeeded_devices"], row["failed_devices"]) == ("SUCCEEDED", 1, 0)
    deleted = target_events("device", running.uuid)
    assert [e["details"]["pending_jobs"] for e in deleted
            if e["action"] == "device.deleted"] == [[str(job_id)]]


def test_rotate_token_replaces_the_old_one(client, admin_headers):
    device = register(client, admin_headers)
    response = client.post(f"{DEVICES}/{device['uuid']}/token", headers=admin_headers)
    assert response.status_code == 200
    new_token = response.get_json()["device_token"]
    assert new_token != device["device_token"]
    assert tokens.authenticate(device["device_token"]) is None
    assert tokens.authenticate(new_token).device_uuid == uuid.UUID(device["uuid"])
    assert actions(device["uuid"])[-1] == "device.token_rotated"


def test_tokens_never_reach_the_audit_trail(client, admin_headers):
    device = register(client, admin_headers)
    rotated = client.post(f"{DEVICES}/{device['uuid']}/token", headers=admin_headers).get_json()
    trail = json.dumps(target_events("device", device["uuid"]), default=str)
    assert device["device_token"] not in trail
    assert rotated["device_token"] not in trail
