"""``{{NAME}}`` placeholders in job documents, and rendering a document from parameters.

Substitution happens in the parsed document, string value by string value, never by editing
JSON text, so a parameter value can hold quotes, braces or newlines and still yields valid JSON.
Keys are never substituted. A value is inserted verbatim, except inside a ``runCommand``
command: there its commas are escaped (``\\,``), so one parameter is always one argument and a
value such as ``"nginx,--force"`` cannot smuggle extra arguments into the command line.

Which value a placeholder gets: the caller's ``parameters`` first, then the template's declared
default. A placeholder with neither is missing; every missing name is reported in one error.
The rendered document should be validated again (``validate_job_document``): a rendered value
can make a valid template invalid, for instance by emptying a handler name.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from marshmallow import ValidationError

from dispatcher.errors import InvalidInput
from schemas.job_document import escape_command_argument, validate_job_document

PLACEHOLDER = re.compile(r"\{\{([A-Za-z_][A-Za-z0-9_]*)\}\}")
PARAMETER_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*\Z")


def find_placeholders(document: object) -> set[str]:
    """Every placeholder name used in a string value anywhere in ``document``."""
    names: set[str] = set()
    for text, _ in _string_values(document):
        names.update(PLACEHOLDER.findall(text))
    return names


def checked_job_document(document: object, max_bytes: int, field: str = "job_document") -> dict:
    """The canonical form of ``document``; its problems become InvalidInput under ``field``.

    Use it on every document before it is stored or sent: a template's, a custom job's, and a
    rendered one (``max_bytes`` is ``Settings.max_document_bytes``).
    """
    try:
        return validate_job_document(document, max_bytes)
    except ValidationError as exc:
        raise InvalidInput(f"Invalid {field}", errors={field: exc.messages}) from None


def render_job_document(
    document: dict, declared: Mapping[str, str | None], parameters: Mapping[str, object]
) -> dict:
    """A copy of ``document`` with every placeholder replaced.

    ``declared`` is the template's declaration (NAME → default, or None for no default);
    ``parameters`` are the values given for this execution. Raises InvalidInput naming every
    missing placeholder, every parameter the document does not use, and every value that is
    not a string.
    """
    used = find_placeholders(document)
    values: dict[str, object] = {
        name: default for name, default in declared.items() if default is not None
    }
    values.update(parameters)
    problems = _parameter_problems(document, used, values, parameters)
    if problems:
        missing = sorted(name for name in used if name not in values)
        message = (
            "Missing values for placeholders: " + ", ".join(missing)
            if missing
            else "Invalid parameters: " + ", ".join(sorted(problems))
        )
        raise InvalidInput(message, errors={"parameters": problems})
    # Every used placeholder now has a string value (checked above).
    strings = {name: str(value) for name, value in values.items()}
    rendered = _render(document, strings, in_command=False)
    assert isinstance(rendered, dict)
    return rendered


def _parameter_problems(
    document: object, used: set[str], values: Mapping[str, object], parameters: Mapping
) -> dict[str, list[str]]:
    problems: dict[str, list[str]] = {}
    for name in sorted(used - values.keys()):
        problems[name] = [f"Missing value for placeholder {{{{{name}}}}}"]
    for name in sorted(parameters.keys() - used):
        problems[name] = [f"Unknown parameter: the document has no placeholder {{{{{name}}}}}"]
    in_commands = _placeholders_in_commands(document)
    for name in sorted(used & values.keys()):
        value = values[name]
        if not isinstance(value, str):
            problems[name] = ["Must be a string"]
        elif "\x00" in value:
            problems[name] = ["Must not contain NUL characters"]
        elif name in in_commands and value.endswith("\\"):
            # The value's last backslash and the separator after it would read as "\,".
            problems[name] = ["A value used in a command must not end with a backslash"]
    return problems


def _render(value: object, values: Mapping[str, str], in_command: bool) -> object:
    if isinstance(value, str):
        if in_command:
            return PLACEHOLDER.sub(lambda m: escape_command_argument(values[m.group(1)]), value)
        return PLACEHOLDER.sub(lambda m: values[m.group(1)], value)
    if isinstance(value, list):
        return [_render(item, values, in_command=False) for item in value]
    if isinstance(value, dict):
        return {
            key: _render(item, values, in_command=_is_command(key))
            for key, item in value.items()
        }
    return value


def _is_command(key: str) -> bool:
    """True for the ``command`` of a step input (the only ``command`` key a document has)."""
    return key == "command"


def _placeholders_in_commands(document: object) -> set[str]:
    return {
        name
        for text, in_command in _string_values(document)
        if in_command
        for name in PLACEHOLDER.findall(text)
    }


def _string_values(value: object, in_command: bool = False):
    """Yield (string, is-a-command) for every string value in a JSON document."""
    if isinstance(value, str):
        yield value, in_command
    elif isinstance(value, list):
        for item in value:
            yield from _string_values(item)
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _string_values(item, _is_command(key))
