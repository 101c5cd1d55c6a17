"""The API takes job documents as the AWS IoT Device Client writes them, and stores them in
canonical form with their unknown keys kept."""

from __future__ import annotations

TEMPLATES = "/api/v1/jobs/templates"

REBOOT_SAMPLE = {
    "_comment": "This sample JSON file can be used for rebooting the device.",
    "version": "1.0",
    "steps": [{"action": {"name": "Reboot Device", "type": "runHandler",
                          "input": {"handler": "reboot.sh"}, "runAsUser": "root"}}],
}
OLD_SCHEMA_SAMPLE = {
    "_comment": "Downloads a file.", "operation": "download-file.sh",
    "args": ["https://example.com/v1.3.tar.gz", "/tmp/client.tar.gz"], "path": "default",
}


def create(client, headers, name: str, document: dict):
    return client.post(TEMPLATES, json={"name": name, "category": "system",
                                        "job_document": document}, headers=headers)


def test_a_device_client_sample_is_stored_with_its_comment(client, admin_headers):
    response = create(client, admin_headers, "aws-reboot", REBOOT_SAMPLE)
    assert response.status_code == 201, response.get_json()
    stored = response.get_json()["job_document"]
    assert stored["_comment"] == REBOOT_SAMPLE["_comment"]
    assert stored["steps"][0] == {"name": "Reboot Device", "type": "runHandler",
                                  "input": {"handler": "reboot.sh", "args": []},
                                  "runAsUser": "root", "allowStdErr": False,
                                  "ignoreStepFailure": False}


def test_an_old_schema_document_is_stored_as_its_one_step_document(client, admin_headers):
    response = create(client, admin_headers, "aws-download", OLD_SCHEMA_SAMPLE)
    assert response.status_code == 201, response.get_json()
    stored = response.get_json()["job_document"]
    assert "operation" not in stored and stored["version"] == "1.0"
    assert stored["steps"][0]["input"] == {
        "handler": "download-file.sh", "path": "default",
        "args": ["https://example.com/v1.3.tar.gz", "/tmp/client.tar.gz"]}


def test_a_known_key_of_the_wrong_type_is_a_400_naming_it(client, admin_headers):
    document = {**REBOOT_SAMPLE, "steps": [
        {"action": {**REBOOT_SAMPLE["steps"][0]["action"], "allowStdErr": "2"}}]}
    response = create(client, admin_headers, "bad", document)
    assert response.status_code == 400
    body = response.get_json()
    assert "allowStdErr" in body["errors"]["job_document"]["steps"]["0"]["action"]
    old = create(client, admin_headers, "bad-old", {**OLD_SCHEMA_SAMPLE, "args": "x"})
    assert old.status_code == 400
    assert "args" in old.get_json()["errors"]["job_document"]
