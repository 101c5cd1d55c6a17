"""Job templates: reusable job documents with declared ``{{NAME}}`` parameters.

Documents are stored in their canonical form (``schemas.job_document``), placeholders intact;
they are rendered when a job is executed (``dispatcher.jobs.documents``). A runHandler step names
a handler that the device fetches when it runs the step, so a template may name a handler that
does not exist yet.
"""

from __future__ import annotations

from dispatcher import audit, db
from dispatcher.catalog import entry_identity
from dispatcher.changes import field_changes
from dispatcher.errors import InvalidInput, NotFound
from dispatcher.jobs.documents import checked_job_document, find_placeholders
from dispatcher.policies import columns

EDITABLE_FIELDS = ("name", "description", "category", "job_document", "parameters", "is_active")


def check_parameter_declaration(job_document: dict, parameters: dict) -> None:
    """Refuse declared parameters that the document never uses: almost always a typo.

    Placeholders without a declaration are fine: they are required at execution.
    """
    unused = sorted(parameters.keys() - find_placeholders(job_document))
    if unused:
        raise InvalidInput(
            "Declared parameters not used by the job document: " + ", ".join(unused),
            errors={"parameters": {
                name: [f"Declared, but the job document has no {{{{{name}}}}}"] for name in unused
            }},
        )


def create_template(fields: dict, actor: str, max_document_bytes: int) -> dict:
    """Store a new template from validated request ``fields``; a duplicate name is a Conflict."""
    job_document = checked_job_document(fields["job_document"], max_document_bytes)
    check_parameter_declaration(job_document, fields["parameters"])
    with db.transaction() as c:
        template = c.row(
            "insert_job_template",
            **entry_identity(fields, actor),
            category=fields["category"],
            job_document=db.jsonb(job_document),
            parameters=db.jsonb(fields["parameters"]),
            is_active=fields["is_active"],
            **columns.policy_document_columns(fields),
        )
        audit.record_event(
            c, actor, "template.created", "job_template", template["id"],
            details={"name": template["name"], "category": template["category"]},
        )
    return template


def get_template(template_id: int) -> dict:
    template = db.one("get_job_template", id=template_id)
    if template is None:
        raise NotFound(f"Job template {template_id} not found")
    return template


def list_templates(
    category: str | None, is_active: bool | None, limit: int, offset: int
) -> dict:
    rows = db.all(
        "list_job_templates", category=category, is_active=is_active, limit=limit, offset=offset
    )
    total = db.row("count_job_templates", category=category, is_active=is_active)["n"]
    return {"templates": rows, "total": total, "limit": limit, "offset": offset}


def update_template(
    template_id: int, changes: dict, actor: str, max_document_bytes: int
) -> tuple[dict, dict]:
    """Apply any subset of the editable fields; return the template and what changed.

    The parameter declaration is checked against the document the template will have, so
    changing either one alone cannot leave a declaration the document does not use.
    """
    if "job_document" in changes:
        changes = {
            **changes,
            "job_document": checked_job_document(changes["job_document"], max_document_bytes),
        }
    with db.transaction() as c:
        current = c.one("lock_job_template", id=template_id)
        if current is None:
            raise NotFound(f"Job template {template_id} not found")
        wanted = {name: changes.get(name, current[name]) for name in EDITABLE_FIELDS}
        if "job_document" in changes or "parameters" in changes:
            check_parameter_declaration(wanted["job_document"], wanted["parameters"])
        diff = field_changes(current, wanted, EDITABLE_FIELDS, summarized=("job_document",))
        diff.update(columns.store_template_policies(c, current, changes)[1])
        if not diff:
            return current, diff
        template = c.row(
            "update_job_template", id=template_id, name=wanted["name"],
            description=wanted["description"], category=wanted["category"],
            job_document=db.jsonb(wanted["job_document"]),
            parameters=db.jsonb(wanted["parameters"]), is_active=wanted["is_active"],
        )
        audit.record_event(
            c, actor, "template.updated", "job_template", template_id, details={"changed": diff}
        )
    return template, diff


def delete_template(template_id: int, actor: str) -> dict:
    """Delete a template; executions made from it keep their document. Returns it as it was."""
    with db.transaction() as c:
        template = c.one("lock_job_template", id=template_id)
        if template is None:
            raise NotFound(f"Job template {template_id} not found")
        c.execute("delete_job_template", id=template_id)
        audit.record_event(
            c, actor, "template.deleted", "job_template", template_id,
            details={"name": template["name"], "category": template["category"]},
        )
    return template


def search_templates(
    name_contains: str, category: str | None, is_active: bool | None, limit: int, offset: int
) -> dict:
    """A page of templates, by name, whose name contains ``name_contains`` (any case); "" finds
    every template. Templates are few (a catalogue, not a fleet), so no index is needed."""
    return db.page(
        "search_job_templates", "templates", "count_search_job_templates", limit=limit,
        offset=offset, name_contains=name_contains, category=category, is_active=is_active,
    )
