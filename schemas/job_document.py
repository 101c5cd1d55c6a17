"""Job document v1.0: the AWS IoT Device Client job schema, validated and normalized.

Both the server (templates, custom jobs) and the device agent use this module, so it imports
only marshmallow and the standard library: it runs on a Raspberry Pi.

A document is accepted in the forms people actually write:

- steps flat, as in the product guide, or wrapped as ``{"action": {...}}``, as AWS writes them;
- booleans as JSON booleans or the strings ``"true"``/``"false"``.

``validate_job_document`` returns one canonical form, so neither the database nor the agent has
to know the variants: flat steps, real booleans, defaults filled in, empty optional strings
dropped. Every problem is reported at once, keyed by its path in the document
(``{"steps": {"0": {"input": {"command": [...]}}}}``).

``{{NAME}}`` placeholders are plain text here: a template is validated with its placeholders in
place and rendered later, so placeholders can stand in any string field, but not in a boolean or
a number.
"""

from __future__ import annotations

import json
import re

from marshmallow import Schema, ValidationError, fields, validate

from schemas.fields import Text

DOCUMENT_VERSION = "1.0"
MAX_DOCUMENT_BYTES = 32 * 1024
RUN_COMMAND = "runCommand"
RUN_HANDLER = "runHandler"
STEP_TYPES = (RUN_COMMAND, RUN_HANDLER)
STEP_TIMEOUT_S_MAX = 7 * 24 * 3600

# A handler is fetched by name from /devices/<uuid>/handlers/<name> and stored under that name on
# the device, so a name can never hold a path separator or start with a dot. Braces are allowed
# so that a template can write {{HANDLER}}; the rendered document is validated again.
HANDLER_REFERENCE = re.compile(r"^[A-Za-z0-9_{][A-Za-z0-9._{}-]{0,127}\Z")

HANDLER_SHA256 = re.compile(r"^[0-9a-f]{64}\Z")

_UNESCAPED_COMMA = re.compile(r"(?<!\\),")


def split_command(command: str) -> list[str]:
    """The argv of a ``runCommand`` step: split on commas, where ``\\,`` is a literal comma.

    Any other backslash is an ordinary character. The command runs without a shell, so this
    is the only syntax there is.
    """
    return [part.replace("\\,", ",") for part in _UNESCAPED_COMMA.split(command)]


def escape_command_argument(argument: str) -> str:
    """Write ``argument`` so that ``split_command`` reads it back as one argument."""
    return argument.replace(",", "\\,")


class FlexibleBoolean(fields.Field):
    """A JSON boolean, or the string "true" or "false" (AWS documents quote their booleans)."""

    default_error_messages = {"invalid": 'Must be true, false, "true" or "false".'}

    def _deserialize(self, value, attr, data, **kwargs):
        if isinstance(value, bool):
            return value
        if value in ("true", "false"):
            return value == "true"
        raise self.make_error("invalid")


class WholeNumber(fields.Integer):
    """An integer written as a JSON integer: not a string, not 5.0, not a boolean."""

    def __init__(self, **kwargs) -> None:
        super().__init__(strict=True, **kwargs)

    def _deserialize(self, value, attr, data, **kwargs):
        if isinstance(value, bool):
            raise self.make_error("invalid")
        return super()._deserialize(value, attr, data, **kwargs)


def _names_a_program(command: str) -> None:
    if not split_command(command)[0].strip():
        raise ValidationError("The first comma-separated item must name the program to run.")


class _RunCommandInput(Schema):
    command = Text(required=True, validate=[validate.Length(min=1), _names_a_program])


class _RunHandlerInput(Schema):
    handler = Text(
        required=True,
        validate=validate.Regexp(
            HANDLER_REFERENCE,
            error="Must be a handler name: letters, digits, '.', '_', '-'; no leading dot.",
        ),
    )
    args = fields.List(Text(), load_default=list)
    path = Text()
    # Set by the server at execute: the handler's sha256 then; the agent runs nothing else.
    sha256 = Text(validate=validate.Regexp(HANDLER_SHA256, error="Must be a hex sha256."))


_INPUT_SCHEMAS = {RUN_COMMAND: _RunCommandInput(), RUN_HANDLER: _RunHandlerInput()}


class _StepFields(Schema):
    """A step's own fields; its ``input`` is checked against the schema its ``type`` selects."""

    name = Text(required=True, validate=validate.Length(min=1, max=256))
    type = Text(required=True, validate=validate.OneOf(STEP_TYPES))
    input = fields.Dict(required=True)
    runAsUser = Text(validate=validate.Length(max=256))
    allowStdErr = FlexibleBoolean(load_default=False)
    ignoreStepFailure = FlexibleBoolean(load_default=False)
    timeoutSeconds = WholeNumber(validate=validate.Range(min=1, max=STEP_TIMEOUT_S_MAX))


_STEP_FIELDS = _StepFields()


def _load_action(raw: object) -> dict:
    """One flat step, normalized; every problem of the step is reported together."""
    if not isinstance(raw, dict):
        raise ValidationError(["Must be a step object."])
    errors: dict = {}
    step: dict = {}
    try:
        step = _STEP_FIELDS.load(raw)
    except ValidationError as exc:
        errors.update(exc.messages)
    step_type = raw.get("type")
    input_schema = _INPUT_SCHEMAS.get(step_type) if isinstance(step_type, str) else None
    step_input: dict = {}
    if input_schema is not None and isinstance(raw.get("input"), dict):
        try:
            step_input = input_schema.load(raw["input"])
        except ValidationError as exc:
            errors["input"] = exc.messages
    if errors:
        raise ValidationError(errors)
    return _normalized_step(step, step_input)


def _normalized_step(step: dict, step_input: dict) -> dict:
    if step["type"] == RUN_HANDLER and not step_input.get("path"):
        step_input.pop("path", None)
    normalized = {"name": step["name"], "type": step["type"], "input": step_input}
    if step.get("runAsUser"):
        normalized["runAsUser"] = step["runAsUser"]
    normalized["allowStdErr"] = step["allowStdErr"]
    normalized["ignoreStepFailure"] = step["ignoreStepFailure"]
    if "timeoutSeconds" in step:
        normalized["timeoutSeconds"] = step["timeoutSeconds"]
    return normalized


class StepField(fields.Field):
    """A step, flat or wrapped as ``{"action": {...}}``; errors keep the path the author wrote."""

    def _deserialize(self, value, attr, data, **kwargs):
        if isinstance(value, dict) and set(value) == {"action"}:
            try:
                return _load_action(value["action"])
            except ValidationError as exc:
                raise ValidationError({"action": exc.messages}) from None
        return _load_action(value)


class _JobDocument(Schema):
    version = fields.String(
        required=True,
        validate=validate.Equal(DOCUMENT_VERSION, error=f'Must be "{DOCUMENT_VERSION}".'),
    )
    includeStdOut = FlexibleBoolean(load_default=False)
    steps = fields.List(
        StepField(),
        required=True,
        validate=validate.Length(min=1, error="Needs at least one step."),
    )
    finalStep = StepField()


_JOB_DOCUMENT = _JobDocument()


def document_size_bytes(document: object) -> int:
    """Size of ``document`` as compact UTF-8 JSON, the form it is stored and sent in."""
    return len(json.dumps(document, separators=(",", ":"), ensure_ascii=False).encode())


def check_document_size(document: object, max_bytes: int) -> None:
    """Raise ValidationError when ``document`` serializes to more than ``max_bytes``."""
    try:
        size = document_size_bytes(document)
    except (TypeError, ValueError) as exc:
        raise ValidationError({"_schema": [f"Must be plain JSON: {exc}"]}) from None
    if size > max_bytes:
        raise ValidationError(
            {"_schema": [f"Job document is {size} bytes; the limit is {max_bytes} bytes."]}
        )


def validate_job_document(document: object, max_bytes: int | None = MAX_DOCUMENT_BYTES) -> dict:
    """The canonical form of a v1.0 job document, or ValidationError naming every problem.

    The canonical document has ``version``, ``includeStdOut``, flat ``steps`` and, when given,
    ``finalStep``; each step has ``name``, ``type``, ``input``, ``allowStdErr``,
    ``ignoreStepFailure`` and, when given, ``runAsUser`` and ``timeoutSeconds``. A
    ``runHandler`` input always has ``args``. Validating a canonical document returns it as is.
    ``max_bytes=None`` leaves the size to the caller (a request schema that cannot know the
    configured limit).
    """
    if not isinstance(document, dict):
        raise ValidationError({"_schema": ["Must be a job document object."]})
    if max_bytes is not None:
        check_document_size(document, max_bytes)
    try:
        loaded = _JOB_DOCUMENT.load(document)
    except ValidationError as exc:
        raise ValidationError(_string_keys(exc.messages)) from None
    canonical = {
        "version": loaded["version"],
        "includeStdOut": loaded["includeStdOut"],
        "steps": loaded["steps"],
    }
    if "finalStep" in loaded:
        canonical["finalStep"] = loaded["finalStep"]
    return canonical


def _string_keys(messages: object) -> object:
    """List positions come back from marshmallow as ints; JSON paths are strings."""
    if isinstance(messages, dict):
        return {str(key): _string_keys(value) for key, value in messages.items()}
    return messages
