"""Every validation pattern matches the whole value: a trailing newline is not a name."""

from __future__ import annotations

import pytest
from marshmallow import ValidationError

from agent import handlers as agent_handlers
from dispatcher.jobs import documents
from schemas import devices, handlers, job_document, templates


@pytest.mark.parametrize("pattern, good", [
    (handlers.HANDLER_NAME_PATTERN, "restart-service"),
    (handlers._OCTAL_MODE, "700"),
    (job_document.HANDLER_REFERENCE, "restart-service"),
    (documents.PARAMETER_NAME, "SERVICE_NAME"),
    (agent_handlers.HANDLER_NAME, "restart-service"),
])
def test_patterns_refuse_a_trailing_newline(pattern, good):
    assert pattern.match(good)
    assert not pattern.match(good + "\n")


@pytest.mark.parametrize("validator, good", [
    (devices.DEVICE_TYPE, "raspberry-pi"),
    (handlers.HANDLER_NAME, "restart-service"),
    (templates.PARAMETER_NAME, "SERVICE_NAME"),
])
def test_validators_refuse_a_trailing_newline(validator, good):
    assert validator(good) == good
    with pytest.raises(ValidationError):
        validator(good + "\n")


def test_the_permissions_field_refuses_a_trailing_newline():
    with pytest.raises(ValidationError):
        handlers.Permissions().deserialize("700\n")
