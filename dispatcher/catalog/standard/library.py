"""Install the standard handlers and templates as ordinary ones, when they are missing.

The scripts (``handlers/*.sh``) and templates (``templates/*.json``) ship in the package. A
script's leading ``# NAME: what it does`` lines name the handlers it is registered as: a family
of handlers that differ only in what they do (start, stop and restart services) is one script,
registered under each name with ``@handler@`` in it replaced by that name.
``dispatcher migrate`` calls ``install_standard_library`` after the migrations: each handler or
template whose name is not taken is created (with an audit event), and one that exists is left
alone, whether it is the shipped version or an operator's edit. So an edited standard handler is
never overwritten, and a deleted one comes back at the next ``dispatcher migrate``.

Safe to run from several processes at once: each insert does nothing when the name exists.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from dispatcher import audit, db
from dispatcher.catalog.handlers import script_sha256
from dispatcher.catalog.templates import check_parameter_declaration
from dispatcher.jobs.documents import checked_job_document

LIBRARY_DIR = Path(__file__).parent
INSTALLED_BY = "dispatcher migrate"
HANDLER_NAME_MARK = "@handler@"
_NAMES_A_HANDLER = re.compile(r"# ([a-z0-9-]+): (.+)")


@dataclass
class Installed:
    handlers: list[str] = field(default_factory=list)
    templates: list[str] = field(default_factory=list)


def standard_handlers() -> list[dict]:
    """Every shipped handler, by name: its description (from its ``# NAME: ...`` line) and its
    script, as registered under that name."""
    handlers = []
    for path in sorted((LIBRARY_DIR / "handlers").glob("*.sh")):
        script = path.read_text()
        for line in script.splitlines()[1:]:
            names = _NAMES_A_HANDLER.fullmatch(line)
            if names is None:
                break
            name, summary = names.groups()
            handlers.append({"name": name,
                             "script_content": script.replace(HANDLER_NAME_MARK, name),
                             "description": summary[:1].upper() + summary[1:]})
    return sorted(handlers, key=lambda handler: handler["name"])


def standard_templates(max_document_bytes: int) -> list[dict]:
    """Every shipped template, its document in canonical form and its parameters checked."""
    templates = []
    for path in sorted((LIBRARY_DIR / "templates").glob("*.json")):
        template = json.loads(path.read_text())
        template["job_document"] = checked_job_document(
            template["job_document"], max_document_bytes)
        check_parameter_declaration(template["job_document"], template["parameters"])
        templates.append(template)
    return templates


def install_standard_library(max_document_bytes: int, actor: str = INSTALLED_BY) -> Installed:
    """Create the standard handlers and templates whose names are free; return what was made."""
    installed = Installed()
    templates = standard_templates(max_document_bytes)
    with db.transaction() as c:
        for handler in standard_handlers():
            created = c.one(
                "insert_standard_job_handler", name=handler["name"],
                description=handler["description"], script_content=handler["script_content"],
                script_sha256=script_sha256(handler["script_content"]), created_by=actor,
            )
            if created is not None:
                audit.record_event(c, actor, "handler.created", "job_handler", created["name"],
                                   details={"script_type": "bash", "standard": True,
                                            "script_sha256": created["script_sha256"]})
                installed.handlers.append(created["name"])
        for template in templates:
            created = c.one(
                "insert_standard_job_template", name=template["name"],
                description=template["description"], category=template["category"],
                job_document=db.jsonb(template["job_document"]),
                parameters=db.jsonb(template["parameters"]), created_by=actor,
            )
            if created is not None:
                audit.record_event(c, actor, "template.created", "job_template", created["id"],
                                   details={"name": created["name"], "standard": True,
                                            "category": created["category"]})
                installed.templates.append(created["name"])
    return installed
