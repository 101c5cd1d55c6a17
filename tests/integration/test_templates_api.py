"""Job templates API: create, list with filters, get, partial update, delete; all audited."""

from __future__ import annotations

import copy
from dataclasses import replace

from job_rows import target_events
from job_templates import RESTART_TEMPLATE

TEMPLATES = "/api/v1/jobs/templates"

RESTART = RESTART_TEMPLATE


def create(client, headers, body=None, **overrides) -> dict:
    body = {**copy.deepcopy(body or RESTART), **overrides}
    response = client.post(TEMPLATES, json=body, headers=headers)
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def errors_of(response) -> dict:
    assert response.status_code == 400, (response.status_code, response.get_json())
    return response.get_json()["errors"]


def test_create_stores_the_canonical_document_and_defaults(client, admin_headers):
    template = create(client, admin_headers, parameters={"SERVICE_NAME": "nginx"})
    assert template["name"] == "restart-service"
    assert template["is_active"] is True
    assert template["created_by"] == "admin:bootstrap (ADMIN_TOKEN)"
    assert template["parameters"] == {"SERVICE_NAME": "nginx"}
    step = template["job_document"]["steps"][0]
    assert step["allowStdErr"] is False and step["runAsUser"] == "root"
    fetched = client.get(f"{TEMPLATES}/{template['id']}", headers=admin_headers)
    assert fetched.get_json() == template
    trail = target_events("job_template", template["id"])
    assert [e["action"] for e in trail] == ["template.created"]


def test_aws_action_form_is_accepted_and_stored_flat(client, admin_headers):
    document = {"version": "1.0", "includeStdOut": "true", "steps": [
        {"action": {"name": "Reboot", "type": "runHandler",
                    "input": {"handler": "reboot.sh", "path": "default"},
                    "runAsUser": "root", "ignoreStepFailure": "false"}},
    ]}
    template = create(client, admin_headers, name="reboot", job_document=document)
    stored = template["job_document"]
    assert stored["includeStdOut"] is True
    assert stored["steps"][0]["input"] == {"handler": "reboot.sh", "args": [], "path": "default"}


def test_duplicate_name_is_409(client, admin_headers):
    create(client, admin_headers)
    response = client.post(TEMPLATES, json=RESTART, headers=admin_headers)
    assert response.status_code == 409
    assert response.get_json()["status"] == "Conflict"


def test_invalid_document_reports_every_problem_by_path(client, admin_headers):
    response = client.post(TEMPLATES, json={
        "name": "broken", "category": "nightly",
        "job_document": {"version": "1.0", "steps": [
            {"name": "a", "type": "runCommand", "input": {"command": ""},
             "allowStdErr": "maybe"},
            {"action": {"name": "b", "type": "runScript", "input": {}}},
        ]},
    }, headers=admin_headers)
    errors = errors_of(response)
    assert set(errors) == {"category", "job_document"}
    steps = errors["job_document"]["steps"]
    assert set(steps["0"]) == {"input", "allowStdErr"}
    assert "command" in steps["0"]["input"]
    assert "type" in steps["1"]["action"]


def test_empty_steps_missing_fields_and_non_object_documents(client, admin_headers):
    for document in ({"version": "1.0", "steps": []}, {"version": "1.0"}, [], "{}"):
        errors = errors_of(client.post(TEMPLATES, json={**RESTART, "job_document": document},
                                       headers=admin_headers))
        assert "job_document" in errors
    errors = errors_of(client.post(TEMPLATES, json={}, headers=admin_headers))
    assert set(errors) == {"name", "job_document"}


def test_document_over_the_configured_limit_is_400(settings, admin_headers):
    from api.app import create_app

    client = create_app(replace(settings, max_document_bytes=300)).test_client()
    big = copy.deepcopy(RESTART)
    big["job_document"]["steps"][0]["input"]["command"] = "echo," + "x" * 400
    errors = errors_of(client.post(TEMPLATES, json=big, headers=admin_headers))
    assert "limit is 300 bytes" in errors["job_document"]["_schema"][0]
    assert client.post(TEMPLATES, json=RESTART, headers=admin_headers).status_code == 201


def test_parameter_declarations_are_checked_against_placeholders(client, admin_headers):
    errors = errors_of(client.post(TEMPLATES, json={
        **RESTART, "parameters": {"SERVICE_NAM": "nginx", "bad-name": None, "OK": 5},
    }, headers=admin_headers))
    assert "parameters" in errors
    errors = errors_of(client.post(TEMPLATES, json={**RESTART, "parameters": {"UNUSED": None}},
                                   headers=admin_headers))
    assert errors["parameters"] == {
        "UNUSED": ["Declared, but the job document has no {{UNUSED}}"]
    }
    # Undeclared placeholders are allowed: the execution must supply them.
    assert create(client, admin_headers, parameters={})["parameters"] == {}


def test_list_filters_by_category_and_active(client, admin_headers):
    create(client, admin_headers, name="a", category="system")
    create(client, admin_headers, name="b", category="maintenance", is_active=False)
    create(client, admin_headers, name="c", category="system", is_active=False)

    def names(query: str) -> list[str]:
        response = client.get(f"{TEMPLATES}{query}", headers=admin_headers)
        assert response.status_code == 200, response.get_json()
        return [t["name"] for t in response.get_json()["templates"]]

    assert names("") == ["a", "b", "c"]
    assert names("?category=system") == ["a", "c"]
    assert names("?active=true") == ["a"]
    assert names("?active=false&category=system") == ["c"]
    page = client.get(f"{TEMPLATES}?limit=1&offset=5", headers=admin_headers).get_json()
    assert (page["templates"], page["total"], page["limit"], page["offset"]) == ([], 3, 1, 5)
    for query, field in (("?category=nightly", "category"), ("?active=perhaps", "active"),
                         ("?limit=0", "limit")):
        assert field in errors_of(client.get(f"{TEMPLATES}{query}", headers=admin_headers))


def test_put_changes_only_the_given_fields_and_answers_what_changed(client, admin_headers):
    template = create(client, admin_headers, description="old")
    url = f"{TEMPLATES}/{template['id']}"
    response = client.put(url, json={"description": "Updated description", "is_active": False},
                          headers=admin_headers)
    assert response.status_code == 200
    body = response.get_json()
    assert body["description"] == "Updated description" and body["is_active"] is False
    assert body["job_document"] == template["job_document"]
    assert body["changed"] == {"description": {"from": "old", "to": "Updated description"},
                               "is_active": {"from": True, "to": False}}
    new_document = copy.deepcopy(RESTART["job_document"])
    new_document["steps"][0]["input"]["command"] = "systemctl,reload,{{UNIT}}"
    body = client.put(url, json={"job_document": new_document, "parameters": {"UNIT": None}},
                      headers=admin_headers).get_json()
    assert body["changed"]["job_document"] == {"changed": True}
    assert body["parameters"] == {"UNIT": None}
    trail = target_events("job_template", template["id"])
    assert [e["action"] for e in trail] == ["template.created", "template.updated",
                                            "template.updated"]


def test_put_keeps_declarations_consistent_with_the_document(client, admin_headers):
    template = create(client, admin_headers, parameters={"SERVICE_NAME": "nginx"})
    url = f"{TEMPLATES}/{template['id']}"
    plain = {"version": "1.0", "steps": [{"name": "df", "type": "runCommand",
                                          "input": {"command": "df,-h"}}]}
    errors = errors_of(client.put(url, json={"job_document": plain}, headers=admin_headers))
    assert "SERVICE_NAME" in errors["parameters"]
    errors = errors_of(client.put(url, json={"parameters": {"OTHER": "x"}},
                                  headers=admin_headers))
    assert "OTHER" in errors["parameters"]


def test_put_refuses_unknown_fields_duplicates_and_missing_templates(client, admin_headers):
    first = create(client, admin_headers)
    second = create(client, admin_headers, name="second")
    url = f"{TEMPLATES}/{second['id']}"
    errors = errors_of(client.put(url, json={"created_by": "x", "colour": "red"},
                                  headers=admin_headers))
    assert set(errors) == {"created_by", "colour"}
    assert client.put(url, json={"name": first["name"]}, headers=admin_headers).status_code \
        == 409
    assert client.put(f"{TEMPLATES}/999999", json={"description": "x"},
                      headers=admin_headers).status_code == 404


def test_delete_answers_the_template_and_it_is_gone(client, admin_headers):
    template = create(client, admin_headers)
    url = f"{TEMPLATES}/{template['id']}"
    response = client.delete(url, headers=admin_headers)
    assert response.status_code == 200
    assert response.get_json()["name"] == "restart-service"
    assert client.get(url, headers=admin_headers).status_code == 404
    assert client.delete(url, headers=admin_headers).status_code == 404
    trail = target_events("job_template", template["id"])
    assert trail[-1]["action"] == "template.deleted"


def test_unknown_or_malformed_ids_are_404(client, admin_headers):
    for path in ("999999", "abc", "-1", "1.5", "99999999999999999999999"):
        assert client.get(f"{TEMPLATES}/{path}", headers=admin_headers).status_code == 404
