"""What an update really changed: the answer to a PATCH/PUT and the audit trail's details."""

from __future__ import annotations

from collections.abc import Iterable, Mapping


def field_changes(
    current: Mapping, wanted: Mapping, names: Iterable[str], summarized: Iterable[str] = ()
) -> dict[str, dict]:
    """``{name: {"from": old, "to": new}}`` for each of ``names`` whose value differs.

    Fields in ``summarized`` (large ones, such as a job document or a script) are listed as
    ``{"changed": True}`` so the audit trail does not hold a second copy of them.
    """
    summarized = set(summarized)
    changes: dict[str, dict] = {}
    for name in names:
        if wanted[name] == current[name]:
            continue
        if name in summarized:
            changes[name] = {"changed": True}
        else:
            changes[name] = {"from": current[name], "to": wanted[name]}
    return changes
