"""The catalog: what jobs are made of. Templates, handlers, and the standard library of both
that ships with device-jobs."""


def entry_identity(fields: dict, actor: str) -> dict:
    """What every new catalog entry (a template, a handler) stores of who and what it is: its
    name, its description, and who made it (the caller, unless the request names someone)."""
    return {"name": fields["name"], "description": fields.get("description"),
            "created_by": fields.get("created_by") or actor}
