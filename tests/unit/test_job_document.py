"""The job document validator accepts what authors write and names every problem by its path."""

from __future__ import annotations

import copy

import pytest
from job_templates import RESTART_TEMPLATE
from marshmallow import ValidationError

from schemas.job_document import split_command, validate_job_document

SEED_TEMPLATE_DOCUMENT = RESTART_TEMPLATE["job_document"]

AWS_DOCUMENT = {
    "version": "1.0",
    "includeStdOut": "true",
    "steps": [
        {
            "action": {
                "name": "Download",
                "type": "runHandler",
                "input": {"handler": "download-file.sh", "args": ["https://x/y", "/tmp/y"],
                          "path": "default"},
                "runAsUser": "",
                "allowStdErr": "false",
                "ignoreStepFailure": "true",
            }
        }
    ],
    "finalStep": {
        "action": {
            "name": "Clean up",
            "type": "runCommand",
            "input": {"command": "rm,-f,/tmp/y"},
        }
    },
}


def problems(document: object, **kwargs) -> dict:
    with pytest.raises(ValidationError) as caught:
        validate_job_document(document, **kwargs)
    return caught.value.messages


def test_seed_flat_document_is_filled_with_defaults():
    assert validate_job_document(SEED_TEMPLATE_DOCUMENT) == {
        "version": "1.0",
        "includeStdOut": True,
        "steps": [
            {
                "name": "Restart Service",
                "type": "runCommand",
                "input": {"command": "systemctl,restart,{{SERVICE_NAME}}"},
                "runAsUser": "root",
                "allowStdErr": False,
                "ignoreStepFailure": False,
            }
        ],
    }


def test_aws_action_form_is_unwrapped_and_string_booleans_become_booleans():
    document = validate_job_document(AWS_DOCUMENT)
    assert document["includeStdOut"] is True
    step = document["steps"][0]
    assert "action" not in step
    assert step["input"] == {"handler": "download-file.sh", "args": ["https://x/y", "/tmp/y"],
                             "path": "default"}
    assert step["allowStdErr"] is False
    assert step["ignoreStepFailure"] is True
    assert "runAsUser" not in step  # "" means: the agent's own user
    assert document["finalStep"]["input"] == {"command": "rm,-f,/tmp/y"}


def test_canonical_document_validates_to_itself_and_input_is_not_modified():
    original = copy.deepcopy(AWS_DOCUMENT)
    canonical = validate_job_document(AWS_DOCUMENT)
    assert original == AWS_DOCUMENT
    assert validate_job_document(canonical) == canonical


def test_handler_args_default_to_empty_and_timeout_is_kept():
    document = validate_job_document({
        "version": "1.0",
        "steps": [{"name": "h", "type": "runHandler", "input": {"handler": "reboot"},
                   "timeoutSeconds": 30}],
    })
    assert document["steps"][0]["input"] == {"handler": "reboot", "args": []}
    assert document["steps"][0]["timeoutSeconds"] == 30
    assert document["includeStdOut"] is False


@pytest.mark.parametrize("value", ["yes", "True", 1, 0, None, "1"])
def test_booleans_other_than_true_false_are_refused(value):
    document = copy.deepcopy(SEED_TEMPLATE_DOCUMENT)
    document["steps"][0]["ignoreStepFailure"] = value
    document["includeStdOut"] = value
    messages = problems(document)
    assert "includeStdOut" in messages
    assert "ignoreStepFailure" in messages["steps"]["0"]


@pytest.mark.parametrize(("value", "stored"), [
    (2, 2), (0, 0), (True, True), ("false", False), ("true", True)])
def test_allow_stderr_is_a_boolean_or_a_number_of_lines(value, stored):
    document = copy.deepcopy(SEED_TEMPLATE_DOCUMENT)
    document["steps"][0]["allowStdErr"] = value
    assert validate_job_document(document)["steps"][0]["allowStdErr"] == stored


@pytest.mark.parametrize("value", [-1, 1.5, "2", "yes", None, [1]])
def test_allow_stderr_refuses_anything_else(value):
    document = copy.deepcopy(SEED_TEMPLATE_DOCUMENT)
    document["steps"][0]["allowStdErr"] = value
    assert "allowStdErr" in problems(document)["steps"]["0"]


def test_unknown_keys_at_every_level_are_kept_and_known_keys_still_checked():
    document = {
        "_comment": "a sample", "conditions": [{"key": "os"}], "version": "1.0",
        "steps": [{"_comment": "wrapper", "action": {
            "name": "Echo", "type": "runHandler", "_note": 1,
            "input": {"handler": "echo", "args": ["hi"], "extra": {"a": [1]}},
        }}],
        "finalStep": {"name": "f", "type": "runCommand", "input": {"command": "true", "x": 1}},
    }
    canonical = validate_job_document(document)
    assert canonical["_comment"] == "a sample"
    assert canonical["conditions"] == [{"key": "os"}]
    step = canonical["steps"][0]
    assert (step["_comment"], step["_note"], step["input"]["extra"]) == ("wrapper", 1, {"a": [1]})
    assert canonical["finalStep"]["input"] == {"command": "true", "x": 1}
    assert validate_job_document(canonical) == canonical
    bad = copy.deepcopy(document)
    bad["steps"][0]["action"]["timeoutSeconds"] = "10"
    bad["steps"][0]["action"]["_note"] = "nul\x00"
    messages = problems(bad)["steps"]["0"]["action"]
    assert set(messages) == {"timeoutSeconds", "_note"}


def test_old_schema_is_stored_as_the_one_step_document_it_stands_for():
    old = {"_comment": "Device Client sample", "operation": "download-file.sh",
           "args": ["https://x/y.tar.gz", "/tmp/y.tar.gz"], "path": "default",
           "allowStdErr": 3, "includeStdOut": "true"}
    assert validate_job_document(old) == {
        "_comment": "Device Client sample", "version": "1.0", "includeStdOut": True,
        "steps": [{"name": "download-file.sh", "type": "runHandler",
                   "input": {"handler": "download-file.sh",
                             "args": ["https://x/y.tar.gz", "/tmp/y.tar.gz"], "path": "default"},
                   "allowStdErr": 3, "ignoreStepFailure": False}],
    }


@pytest.mark.parametrize(("old", "field"), [
    ({"operation": 5}, "operation"), ({"operation": "../x"}, "operation"),
    ({"operation": "x", "args": "a"}, "args"),
    ({"operation": "x", "allowStdErr": -2}, "allowStdErr"),
    ({"operation": "x", "includeStdOut": "yes"}, "includeStdOut"),
])
def test_old_schema_problems_are_named_by_the_old_keys(old, field):
    assert field in problems(old)


def test_reboot_marker_is_kept_only_when_set():
    document = copy.deepcopy(SEED_TEMPLATE_DOCUMENT)
    document["steps"][0]["rebootsDevice"] = "true"
    assert validate_job_document(document)["steps"][0]["rebootsDevice"] is True
    document["steps"][0]["rebootsDevice"] = False
    assert "rebootsDevice" not in validate_job_document(document)["steps"][0]


def test_every_problem_is_reported_with_its_path():
    messages = problems({
        "version": "2.0",
        "steps": [
            {"action": {"name": "", "type": "runCommand", "input": {}}},
            {"name": "x", "type": "runScript", "input": {"command": "ls"}},
            "not a step",
            {"name": "t", "type": "runCommand", "input": {"command": "ls"},
             "timeoutSeconds": 0, "allowStdErr": "some"},
        ],
        "finalStep": {"name": "f", "type": "runHandler", "input": {"handler": "../etc/x"}},
    })
    assert messages["version"] == ['Must be "1.0".']
    step0 = messages["steps"]["0"]["action"]
    assert "name" in step0
    assert step0["input"]["command"] == ["Missing data for required field."]
    assert "type" in messages["steps"]["1"]
    assert messages["steps"]["2"] == ["Must be a step object."]
    assert set(messages["steps"]["3"]) == {"timeoutSeconds", "allowStdErr"}
    assert "handler" in messages["finalStep"]["input"]


@pytest.mark.parametrize(
    ("document", "path"),
    [
        ({"steps": [{"name": "a", "type": "runCommand", "input": {"command": "ls"}}]},
         ("version",)),
        ({"version": "1.0"}, ("steps",)),
        ({"version": "1.0", "steps": []}, ("steps",)),
        ({"version": "1.0", "steps": {}}, ("steps",)),
        ({"version": "1.0", "steps": [{"type": "runCommand", "input": {"command": "ls"}}]},
         ("steps", "0", "name")),
        ({"version": "1.0", "steps": [{"name": "a", "input": {"command": "ls"}}]},
         ("steps", "0", "type")),
        ({"version": "1.0", "steps": [{"name": "a", "type": "runCommand"}]},
         ("steps", "0", "input")),
        ({"version": "1.0", "steps": [{"name": "a", "type": "runCommand",
                                       "input": {"command": ""}}]},
         ("steps", "0", "input", "command")),
        ({"version": "1.0", "steps": [{"name": "a", "type": "runCommand",
                                       "input": {"command": ",rm"}}]},
         ("steps", "0", "input", "command")),
        ({"version": "1.0", "steps": [{"name": "a", "type": "runCommand",
                                       "input": {"command": ["ls"]}}]},
         ("steps", "0", "input", "command")),
        ({"version": "1.0", "steps": [{"name": "a", "type": "runHandler",
                                       "input": {"handler": "h", "args": "x"}}]},
         ("steps", "0", "input", "args")),
        ({"version": "1.0", "steps": [{"name": "a", "type": "runHandler",
                                       "input": {"handler": "a/b"}}]},
         ("steps", "0", "input", "handler")),
        ({"version": "1.0", "steps": [{"name": "a", "type": "runCommand",
                                       "input": {"command": "ls\x00"}}]},
         ("steps", "0", "input", "command")),
        ({"version": "1.0", "steps": [{"name": "a", "type": "runCommand",
                                       "input": {"command": "ls"}, "timeoutSeconds": "5"}]},
         ("steps", "0", "timeoutSeconds")),
        ({"version": "1.0", "steps": [{"name": "a", "type": "runCommand",
                                       "input": {"command": "ls"}, "timeoutSeconds": True}]},
         ("steps", "0", "timeoutSeconds")),
        ({"version": "1.0", "steps": [{"action": "ls"}]}, ("steps", "0", "action")),
        ({"version": "1.0", "steps": [{"name": "a", "type": "runCommand",
                                       "input": {"command": "ls"}}], "includeStdOut": 1},
         ("includeStdOut",)),
    ],
)
def test_bad_document_names_the_field(document, path):
    messages = problems(document)
    for key in path:
        assert key in messages, (path, messages)
        messages = messages[key]


@pytest.mark.parametrize("document", [[], "{}", None, 42])
def test_a_document_must_be_an_object(document):
    assert "_schema" in problems(document)


def test_size_limit_counts_the_serialized_document():
    step = {"name": "echo", "type": "runCommand", "input": {"command": "echo," + "x" * 1000}}
    document = {"version": "1.0", "steps": [step] * 40}
    assert "limit is 32768 bytes" in problems(document)["_schema"][0]
    assert validate_job_document(document, max_bytes=64 * 1024)["steps"][39] is not None
    assert "_schema" in problems(SEED_TEMPLATE_DOCUMENT, max_bytes=100)


@pytest.mark.parametrize(
    ("command", "argv"),
    [
        ("df,-h", ["df", "-h"]),
        ("echo,hello world", ["echo", "hello world"]),
        (r"echo,a\,b,c", ["echo", "a,b", "c"]),
        ("printf,,x", ["printf", "", "x"]),
        (r"grep,a\b", ["grep", r"a\b"]),
        ("reboot", ["reboot"]),
    ],
)
def test_split_command(command, argv):
    assert split_command(command) == argv
