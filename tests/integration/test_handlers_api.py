"""Job handlers API, and a device fetching and verifying a handler script with its own token."""

from __future__ import annotations

import hashlib

from job_rows import (
    Device,
    handler_document,
    insert_job,
    quietly,
    set_row_status,
    target_events,
)

from dispatcher import db
from dispatcher.fleet.devices import register_device

HANDLERS = "/api/v1/jobs/handlers"

BACKUP = {
    "name": "backup-database",
    "description": "Backup PostgreSQL database",
    "script_type": "bash",
    "script_content": "#!/bin/bash\nDB_NAME=$2\npg_dump $DB_NAME > /backups/db-$(date +%Y%m%d).sql",
    "default_args": ["myapp"],
    "created_by": "admin",
}


def create(client, headers, **overrides) -> dict:
    response = client.post(HANDLERS, json={**BACKUP, **overrides}, headers=headers)
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def test_create_stores_the_script_with_its_sha256(client, admin_headers):
    handler = create(client, admin_headers)
    assert handler["script_sha256"] == sha256(BACKUP["script_content"])
    assert handler["permissions"] == "700"
    assert handler["default_args"] == ["myapp"]
    assert handler["created_by"] == "admin"
    fetched = client.get(f"{HANDLERS}/backup-database", headers=admin_headers).get_json()
    assert fetched == handler
    trail = target_events("job_handler", "backup-database")
    assert trail[0]["details"]["script_sha256"] == handler["script_sha256"]


def test_list_pages_by_name_without_scripts(client, admin_headers):
    for name in ("zeta", "alpha", "mid"):
        create(client, admin_headers, name=name)
    body = client.get(f"{HANDLERS}?limit=2", headers=admin_headers).get_json()
    assert [h["name"] for h in body["handlers"]] == ["alpha", "mid"]
    assert body["total"] == 3
    assert "script_content" not in body["handlers"][0]
    assert body["handlers"][0]["script_sha256"] == sha256(BACKUP["script_content"])


def test_validation_names_each_field(client, admin_headers):
    response = client.post(HANDLERS, json={
        "name": "../evil", "script_type": "ruby", "script_content": "",
        "permissions": "999", "default_args": "myapp", "extra": 1,
    }, headers=admin_headers)
    assert response.status_code == 400
    assert set(response.get_json()["errors"]) == {
        "name", "script_type", "script_content", "permissions", "default_args", "extra",
    }
    response = client.post(HANDLERS, json={**BACKUP, "default_args": ["ok", 5]},
                           headers=admin_headers)
    assert "default_args" in response.get_json()["errors"]


def test_numeric_permissions_are_accepted(client, admin_headers):
    assert create(client, admin_headers, permissions=755)["permissions"] == "755"
    assert create(client, admin_headers, name="b", permissions="0750")["permissions"] == "0750"


def test_duplicate_name_is_409(client, admin_headers):
    create(client, admin_headers)
    assert client.post(HANDLERS, json=BACKUP, headers=admin_headers).status_code == 409


def test_put_recomputes_the_sha256_and_answers_what_changed(client, admin_headers):
    create(client, admin_headers)
    url = f"{HANDLERS}/backup-database"
    script = "#!/bin/bash\necho new"
    response = client.put(url, json={"script_content": script, "permissions": "750"},
                          headers=admin_headers)
    assert response.status_code == 200
    body = response.get_json()
    assert body["script_sha256"] == sha256(script)
    assert body["changed"]["script_content"] == {"changed": True}
    assert body["changed"]["permissions"] == {"from": "700", "to": "750"}
    assert body["changed"]["script_sha256"]["to"] == sha256(script)
    assert body["default_args"] == ["myapp"]
    assert client.put(url, json={"name": "renamed"}, headers=admin_headers).status_code == 400
    assert client.put(f"{HANDLERS}/nope", json={"description": "x"},
                      headers=admin_headers).status_code == 404


def test_delete_answers_the_handler_and_it_is_gone(client, admin_headers):
    create(client, admin_headers)
    url = f"{HANDLERS}/backup-database"
    response = client.delete(url, headers=admin_headers)
    assert response.status_code == 200
    assert response.get_json()["script_content"] == BACKUP["script_content"]
    assert client.get(url, headers=admin_headers).status_code == 404
    assert client.delete(url, headers=admin_headers).status_code == 404


def test_device_fetches_a_handler_and_can_verify_it(client, admin_headers):
    create(client, admin_headers)
    device, token = quietly(register_device("pi"))
    insert_job([Device(device["uuid"], "pi", token)], document=handler_document("backup-database"))
    response = client.get(f"/api/v1/devices/{device['uuid']}/handlers/backup-database",
                          headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200
    body = response.get_json()
    assert set(body) == {"name", "script_type", "script_content", "script_sha256",
                         "permissions", "default_args"}
    assert sha256(body["script_content"]) == body["script_sha256"]
    missing = client.get(f"/api/v1/devices/{device['uuid']}/handlers/nope",
                         headers={"Authorization": f"Bearer {token}"})
    assert missing.status_code == 404


def test_a_device_fetches_only_handlers_its_own_pending_or_recent_jobs_run(client, admin_headers):
    for name in ("backup-database", "final-handler", "someone-elses"):
        create(client, admin_headers, name=name)
    me, other = (Device(d["uuid"], d["device_name"], t) for d, t in (
        quietly(register_device("me")),
        quietly(register_device("other"))))
    insert_job([me], document=handler_document("backup-database", final="final-handler"))
    insert_job([other], document=handler_document("someone-elses"))

    def fetch(name: str) -> int:
        return client.get(f"/api/v1/devices/{me.uuid}/handlers/{name}",
                          headers=me.headers).status_code

    assert fetch("backup-database") == 200
    assert fetch("final-handler") == 200
    assert fetch("someone-elses") == 404
    old = insert_job([me], document=handler_document("someone-elses"), status="SUCCEEDED")
    set_row_status(old, me, "SUCCEEDED")
    assert fetch("someone-elses") == 200
    with db.pool().connection() as conn:
        conn.execute("UPDATE device_job_status SET last_updated_at = now() - interval '2 days'"
                     " WHERE job_id = %s", (old,))
    assert fetch("someone-elses") == 404
