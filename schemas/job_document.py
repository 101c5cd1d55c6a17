"""Job document v1.0: the AWS IoT Device Client job schema, validated and normalized.

Both the server (templates, custom jobs) and the device agent use this module, so it imports
only marshmallow and the standard library: it runs on a Raspberry Pi.

A document is accepted in the forms people actually write:

- steps flat, as in the product guide, or wrapped as ``{"action": {...}}``, as AWS writes them;
- booleans as JSON booleans or the strings ``"true"``/``"false"``;
- ``allowStdErr`` as a boolean or as the number of stderr lines a step may write;
- keys this schema does not know (``_comment``, ``conditions``, ...) at any level: kept in the
  stored document and ignored by the agent, as the AWS IoT Device Client ignores them;
- the Device Client's old one-operation schema (``operation``, ``args``, ``allowStdErr``,
  ``includeStdOut``, ``path`` at the top level, no ``version``), stored as the one-step
  document it stands for.

``validate_job_document`` returns one canonical form, so neither the database nor the agent has
to know the variants: flat steps, real booleans, defaults filled in, empty optional strings
dropped, unknown keys kept as written. Every problem is reported at once, keyed by its path in
the document (``{"steps": {"0": {"input": {"command": [...]}}}}``); a known key with a value of
the wrong type is still an error.

``{{NAME}}`` placeholders are plain text here: a template is validated with its placeholders in
place and rendered later, so placeholders can stand in any string field, but not in a boolean or
a number.
"""

from __future__ import annotations

import json
import re
from typing import Any

from marshmallow import INCLUDE, Schema, ValidationError, fields, validate

from schemas.fields import Text, load_default, refuse_unstorable_json
from schemas.handlers import SCRIPT_TYPES

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


class StdErrAllowance(fields.Field):
    """``allowStdErr``: true (any stderr), false (none), or how many stderr lines are allowed.

    The Device Client documents it as an integer; this project's guide writes booleans. Both
    mean the same here: a step that exits 0 succeeds while its stderr lines do not exceed it.
    """

    default_error_messages = {
        "invalid": 'Must be true, false, "true", "false" or a whole number of lines (0 or more).'
    }

    def _deserialize(self, value, attr, data, **kwargs):
        if isinstance(value, bool):
            return value
        if value in ("true", "false"):
            return value == "true"
        if isinstance(value, int) and value >= 0:
            return value
        raise self.make_error("invalid")


def stderr_lines_allowed(allow_stderr: bool | int) -> int | None:
    """How many stderr lines a step may write; None means any number."""
    if allow_stderr is True:
        return None
    return 0 if allow_stderr is False else int(allow_stderr)


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


class _Lenient(Schema):
    """Keys the schema does not know pass through; ``_extras`` picks them out to keep them."""

    class Meta:
        unknown = INCLUDE


def _extras(schema: Schema, raw: dict, errors: dict) -> dict:
    """The keys of ``raw`` that ``schema`` does not know, as written (they must be storable)."""
    extras = {key: value for key, value in raw.items() if key not in schema.fields}
    for key, value in extras.items():
        try:
            refuse_unstorable_json(value)
        except ValidationError as exc:
            errors[key] = exc.messages
    return extras


class _RunCommandInput(_Lenient):
    command = Text(required=True, validate=[validate.Length(min=1), _names_a_program])


class _RunHandlerInput(_Lenient):
    handler = Text(
        required=True,
        validate=validate.Regexp(
            HANDLER_REFERENCE,
            error="Must be a handler name: letters, digits, '.', '_', '-'; no leading dot.",
        ),
    )
    args = fields.List(Text(), **load_default(list))
    path = Text()
    # Set by the server at execute: the handler's sha256 then; the agent runs nothing else.
    sha256 = Text(validate=validate.Regexp(HANDLER_SHA256, error="Must be a hex sha256."))
    # Set with it: the interpreter then (``args`` then hold the arguments it runs with).
    scriptType = Text(validate=validate.OneOf(SCRIPT_TYPES))


def pinned_at_execute(step_input: dict) -> bool:
    """Whether a ``runHandler`` input was pinned by the server at execute: its content,
    interpreter and arguments are fixed, and its ``args`` are used as they are."""
    return "sha256" in step_input and "scriptType" in step_input


_INPUT_SCHEMAS = {RUN_COMMAND: _RunCommandInput(), RUN_HANDLER: _RunHandlerInput()}


class _StepFields(_Lenient):
    """A step's own fields; its ``input`` is checked against the schema its ``type`` selects."""

    name = Text(required=True, validate=validate.Length(min=1, max=256))
    type = Text(required=True, validate=validate.OneOf(STEP_TYPES))
    input = fields.Dict(required=True)
    runAsUser = Text(validate=validate.Length(max=256))
    allowStdErr = StdErrAllowance(**load_default(False))
    ignoreStepFailure = FlexibleBoolean(**load_default(False))
    timeoutSeconds = WholeNumber(validate=validate.Range(min=1, max=STEP_TIMEOUT_S_MAX))
    # Ours, not the Device Client's: the step takes the device down (see agent.recovery).
    rebootsDevice = FlexibleBoolean(**load_default(False))


_STEP_FIELDS = _StepFields()


def _load_collecting(schema: Schema, raw: Any, errors: dict) -> dict:
    """``schema.load(raw)``; when it fails, {} with its messages added to ``errors``, so that
    the caller can report every problem together."""
    try:
        return schema.load(raw)
    except ValidationError as exc:
        errors.update(exc.normalized_messages())
        return {}


def _load_action(raw: object, outer_extras: dict | None = None) -> dict:
    """One flat step, normalized; every problem of the step is reported together."""
    if not isinstance(raw, dict):
        raise ValidationError(["Must be a step object."])
    errors: dict = {}
    step = _load_collecting(_STEP_FIELDS, raw, errors)
    extras = {**(outer_extras or {}), **_extras(_STEP_FIELDS, raw, errors)}
    step_type = raw.get("type")
    input_schema = _INPUT_SCHEMAS.get(step_type) if isinstance(step_type, str) else None
    step_input: dict = {}
    if input_schema is not None and isinstance(raw.get("input"), dict):
        input_errors: dict = {}
        step_input = _load_collecting(input_schema, raw["input"], input_errors)
        input_extras = _extras(input_schema, raw["input"], input_errors)
        step_input = {**input_extras, **{k: v for k, v in step_input.items()
                                         if k in input_schema.fields}}
        if input_errors:
            errors["input"] = input_errors
    if errors:
        raise ValidationError(errors)
    return _normalized_step(step, step_input, extras)


def _normalized_step(step: dict, step_input: dict, extras: dict) -> dict:
    if step["type"] == RUN_HANDLER and not step_input.get("path"):
        step_input.pop("path", None)
    normalized = {**extras, "name": step["name"], "type": step["type"], "input": step_input}
    if step.get("runAsUser"):
        normalized["runAsUser"] = step["runAsUser"]
    normalized["allowStdErr"] = step["allowStdErr"]
    normalized["ignoreStepFailure"] = step["ignoreStepFailure"]
    if "timeoutSeconds" in step:
        normalized["timeoutSeconds"] = step["timeoutSeconds"]
    if step["rebootsDevice"]:
        normalized["rebootsDevice"] = True
    return normalized


class StepField(fields.Field):
    """A step, flat or wrapped as ``{"action": {...}}``; errors keep the path the author wrote."""

    def _deserialize(self, value, attr, data, **kwargs):
        if isinstance(value, dict) and "action" in value and "type" not in value:
            # The wrapper's own keys (a "_comment" beside "action") are kept on the step.
            outer_errors: dict = {}
            outer = {k: v for k, v in value.items() if k != "action"}
            for key, extra in outer.items():
                try:
                    refuse_unstorable_json(extra)
                except ValidationError as exc:
                    outer_errors[key] = exc.messages
            try:
                step = _load_action(value["action"], outer)
            except ValidationError as exc:
                outer_errors["action"] = exc.messages
            if outer_errors:
                raise ValidationError(outer_errors) from None
            return step
        return _load_action(value)


class _JobDocument(_Lenient):
    version = fields.String(
        required=True,
        validate=validate.Equal(DOCUMENT_VERSION, error=f'Must be "{DOCUMENT_VERSION}".'),
    )
    includeStdOut = FlexibleBoolean(**load_default(False))
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
    if is_old_schema(document):
        document = _from_old_schema(document)
    errors: dict = {}
    loaded = _load_collecting(_JOB_DOCUMENT, document, errors)
    extras = _extras(_JOB_DOCUMENT, document, errors)
    if errors:
        raise ValidationError(_string_keys(errors)) from None  # type: ignore[arg-type]
    canonical = {
        **extras,
        "version": loaded["version"],
        "includeStdOut": loaded["includeStdOut"],
        "steps": loaded["steps"],
    }
    if "finalStep" in loaded:
        canonical["finalStep"] = loaded["finalStep"]
    return canonical


OLD_SCHEMA_KEYS = ("operation", "args", "allowStdErr", "path")


def is_old_schema(document: dict) -> bool:
    """The Device Client's first schema: one handler ``operation``, no ``version``."""
    return "version" not in document and "operation" in document


class _OldSchema(_Lenient):
    operation = Text(required=True)
    args = fields.Raw()
    allowStdErr = fields.Raw()
    path = fields.Raw()
    includeStdOut = fields.Raw()


def _from_old_schema(document: dict) -> dict:
    """The one-step v1.0 document an old-schema document stands for, as the Device Client reads
    it: the step is named after its operation and runs it as a handler. Problems are named by
    the old keys the author wrote."""
    try:
        _OldSchema().load(document)
    except ValidationError as exc:
        raise ValidationError(exc.messages) from None
    step_input = {"handler": document["operation"]}
    for key in ("args", "path"):
        if key in document:
            step_input[key] = document[key]
    step = {"name": document["operation"], "type": RUN_HANDLER, "input": step_input}
    if "allowStdErr" in document:
        step["allowStdErr"] = document["allowStdErr"]
    converted = {k: v for k, v in document.items() if k not in OLD_SCHEMA_KEYS}
    converted.update(version=DOCUMENT_VERSION, steps=[step])
    try:
        return validate_job_document(converted, max_bytes=None)
    except ValidationError as exc:
        raise ValidationError(_old_schema_paths(exc.normalized_messages())) from None


def _old_schema_paths(messages: dict) -> dict:
    """Errors of the converted document, keyed back by the old keys the author wrote."""
    step = messages.pop("steps", {}).get("0", {})
    step_input = step.pop("input", {}) if isinstance(step, dict) else {}
    renamed = {"handler": "operation"}
    for key, value in {**step_input, **(step if isinstance(step, dict) else {})}.items():
        messages[renamed.get(key, key)] = value
    return messages


def _string_keys(messages: object) -> object:
    """List positions come back from marshmallow as ints; JSON paths are strings."""
    if isinstance(messages, dict):
        return {str(key): _string_keys(value) for key, value in messages.items()}
    return messages
