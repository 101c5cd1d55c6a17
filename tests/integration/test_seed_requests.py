"""Every request of the product guide's "Job Templates" and "Job Handlers" sections, verbatim.

Bodies are the guide's JSON text, character for character, sent as the request body. The
guide's "Create Template" body abbreviates its steps as ``[...]``, which is not JSON; it is sent
verbatim (and refused as malformed), then with the abbreviation filled in by a real step.
"""

from __future__ import annotations

import hashlib

import pytest

# "Create Template" in "API Endpoints > Job Templates".
CREATE_TEMPLATE = """{
  "name": "update-config",
  "description": "Update device configuration",
  "category": "system",
  "job_document": {
    "version": "1.0",
    "steps": [...]
  },
  "created_by": "admin"
}"""

FILLED_STEPS = (
    '[{"name": "Show config", "type": "runCommand", "input": {"command": "cat,/etc/app.conf"}}]'
)

# "Example Template" in "Key Concepts".
EXAMPLE_TEMPLATE = """{
  "name": "restart-service",
  "category": "system",
  "job_document": {
    "version": "1.0",
    "includeStdOut": true,
    "steps": [
      {
        "name": "Restart Service",
        "type": "runCommand",
        "input": {
          "command": "systemctl,restart,{{SERVICE_NAME}}"
        },
        "runAsUser": "root"
      }
    ]
  }
}"""

# "1. Create a Job Template (Admin Portal)" in "Complete Workflow Example".
WORKFLOW_TEMPLATE = """{
  "name": "update-nginx-config",
  "category": "deployment",
  "job_document": {
    "version": "1.0",
    "includeStdOut": true,
    "steps": [
      {
        "name": "Backup current config",
        "type": "runCommand",
        "input": {
          "command": "cp,/etc/nginx/nginx.conf,/etc/nginx/nginx.conf.backup"
        }
      },
      {
        "name": "Download new config",
        "type": "runHandler",
        "input": {
          "handler": "download-file",
          "args": [
            "https://config.example.com/nginx.conf",
            "/etc/nginx/nginx.conf"
          ]
        }
      },
      {
        "name": "Test config",
        "type": "runCommand",
        "input": {
          "command": "nginx,-t"
        },
        "runAsUser": "root"
      },
      {
        "name": "Reload nginx",
        "type": "runCommand",
        "input": {
          "command": "systemctl,reload,nginx"
        },
        "runAsUser": "root"
      }
    ]
  }
}"""

UPDATE_TEMPLATE = """{
  "description": "Updated description",
  "is_active": false
}"""

CREATE_HANDLER = r"""{
  "name": "backup-database",
  "description": "Backup PostgreSQL database",
  "script_type": "bash",
  "script_content": "#!/bin/bash\nDB_NAME=$2\npg_dump $DB_NAME > /backups/db-$(date +%Y%m%d).sql",
  "default_args": ["myapp"],
  "created_by": "admin"
}"""


@pytest.fixture
def send(client, admin_headers):
    def send(method: str, path: str, body: str | None = None):
        headers = dict(admin_headers)
        if body is not None:
            headers["Content-Type"] = "application/json"
        return client.open(path, method=method, data=body, headers=headers)

    return send


def test_job_templates_section(send):
    assert send("POST", "/api/v1/jobs/templates", CREATE_TEMPLATE).status_code == 400
    created = send("POST", "/api/v1/jobs/templates",
                   CREATE_TEMPLATE.replace("[...]", FILLED_STEPS))
    assert created.status_code == 201
    update_config = created.get_json()
    assert update_config["description"] == "Update device configuration"
    assert update_config["created_by"] == "admin"
    restart = send("POST", "/api/v1/jobs/templates", EXAMPLE_TEMPLATE)
    assert restart.status_code == 201
    nginx = send("POST", "/api/v1/jobs/templates", WORKFLOW_TEMPLATE)
    assert nginx.status_code == 201
    assert len(nginx.get_json()["job_document"]["steps"]) == 4

    listed = send("GET", "/api/v1/jobs/templates")
    assert listed.status_code == 200
    assert [t["name"] for t in listed.get_json()["templates"]] == [
        "update-config", "restart-service", "update-nginx-config",
    ]
    system = send("GET", "/api/v1/jobs/templates?category=system").get_json()["templates"]
    assert {t["name"] for t in system} == {"update-config", "restart-service"}

    template_id = update_config["id"]
    assert send("GET", f"/api/v1/jobs/templates/{template_id}").get_json() == update_config
    updated = send("PUT", f"/api/v1/jobs/templates/{template_id}", UPDATE_TEMPLATE)
    assert updated.status_code == 200
    assert updated.get_json()["description"] == "Updated description"
    assert updated.get_json()["is_active"] is False
    active = send("GET", "/api/v1/jobs/templates?active=true").get_json()["templates"]
    assert {t["name"] for t in active} == {"restart-service", "update-nginx-config"}

    assert send("DELETE", f"/api/v1/jobs/templates/{template_id}").status_code == 200
    assert send("GET", f"/api/v1/jobs/templates/{template_id}").status_code == 404


def test_example_template_name_is_unique(send):
    assert send("POST", "/api/v1/jobs/templates", EXAMPLE_TEMPLATE).status_code == 201
    assert send("POST", "/api/v1/jobs/templates", EXAMPLE_TEMPLATE).status_code == 409


def test_job_handlers_section(send):
    created = send("POST", "/api/v1/jobs/handlers", CREATE_HANDLER)
    assert created.status_code == 201
    handler = created.get_json()
    script = "#!/bin/bash\nDB_NAME=$2\npg_dump $DB_NAME > /backups/db-$(date +%Y%m%d).sql"
    assert handler["script_content"] == script
    assert handler["script_sha256"] == hashlib.sha256(script.encode()).hexdigest()
    assert handler["default_args"] == ["myapp"]
    listed = send("GET", "/api/v1/jobs/handlers")
    assert listed.status_code == 200
    assert [h["name"] for h in listed.get_json()["handlers"]] == ["backup-database"]
