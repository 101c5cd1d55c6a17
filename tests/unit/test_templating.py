"""Rendering {{NAME}} placeholders: values land where written, and every gap is reported."""

from __future__ import annotations

import json

import pytest

from dispatcher.errors import InvalidInput
from dispatcher.jobs.documents import find_placeholders, render_job_document
from schemas.job_document import split_command, validate_job_document

DOCUMENT = validate_job_document({
    "version": "1.0",
    "steps": [
        {"name": "Restart {{SERVICE_NAME}}", "type": "runCommand",
         "input": {"command": "systemctl,restart,{{SERVICE_NAME}}"}, "runAsUser": "{{USER}}"},
        {"name": "Fetch", "type": "runHandler",
         "input": {"handler": "download-file", "args": ["{{URL}}", "/etc/{{SERVICE_NAME}}.conf"]}},
    ],
})


def render_errors(document, declared, parameters) -> dict:
    with pytest.raises(InvalidInput) as caught:
        render_job_document(document, declared, parameters)
    return caught.value.errors["parameters"]


def test_find_placeholders_in_every_string_value_but_not_in_keys():
    assert find_placeholders(DOCUMENT) == {"SERVICE_NAME", "USER", "URL"}
    assert find_placeholders({"{{KEY}}": "{{ NOT_ONE }} {{1BAD}} {x} {{ok_2}}"}) == {"ok_2"}


def test_parameters_win_over_defaults_and_defaults_fill_the_rest():
    rendered = render_job_document(
        DOCUMENT,
        {"SERVICE_NAME": "nginx", "USER": "root", "URL": None},
        {"URL": "https://config.example.com/nginx.conf", "USER": "pi"},
    )
    assert rendered["steps"][0]["name"] == "Restart nginx"
    assert rendered["steps"][0]["input"]["command"] == "systemctl,restart,nginx"
    assert rendered["steps"][0]["runAsUser"] == "pi"
    assert rendered["steps"][1]["input"]["args"] == [
        "https://config.example.com/nginx.conf", "/etc/nginx.conf",
    ]
    assert find_placeholders(DOCUMENT) == {"SERVICE_NAME", "USER", "URL"}  # input untouched


def test_every_missing_placeholder_is_named():
    errors = render_errors(DOCUMENT, {"URL": None}, {"SERVICE_NAME": "nginx"})
    assert errors == {
        "URL": ["Missing value for placeholder {{URL}}"],
        "USER": ["Missing value for placeholder {{USER}}"],
    }


def test_unknown_and_non_string_parameters_are_refused():
    errors = render_errors(
        DOCUMENT, {}, {"SERVICE_NAME": 5, "USER": "pi", "URL": "u", "SERVICE_NAM": "x"}
    )
    assert set(errors) == {"SERVICE_NAME", "SERVICE_NAM"}


def test_values_are_inserted_as_data_not_as_json_text():
    nasty = 'a"b\\c}\n{{URL}}'
    rendered = render_job_document(DOCUMENT, {}, {"SERVICE_NAME": "x", "USER": nasty, "URL": "u"})
    assert rendered["steps"][0]["runAsUser"] == nasty
    assert json.loads(json.dumps(rendered)) == rendered


def test_a_value_in_a_command_stays_one_argument():
    rendered = render_job_document(
        DOCUMENT, {}, {"SERVICE_NAME": "nginx,--force", "USER": "root", "URL": "u"}
    )
    argv = split_command(rendered["steps"][0]["input"]["command"])
    assert argv == ["systemctl", "restart", "nginx,--force"]
    assert rendered["steps"][1]["input"]["args"][1] == "/etc/nginx,--force.conf"
    errors = render_errors(DOCUMENT, {}, {"SERVICE_NAME": "x\\", "USER": "root", "URL": "u"})
    assert set(errors) == {"SERVICE_NAME"}


def test_rendered_document_is_revalidated_by_the_caller():
    rendered = render_job_document(DOCUMENT, {}, {"SERVICE_NAME": "a", "USER": "", "URL": "u"})
    assert "runAsUser" not in validate_job_document(rendered)["steps"][0]


def test_document_without_placeholders_renders_to_an_equal_copy():
    plain = {"version": "1.0", "steps": [{"name": "df", "type": "runCommand",
                                          "input": {"command": "df,-h"}}]}
    rendered = render_job_document(plain, {}, {})
    assert rendered == plain
    assert rendered is not plain
