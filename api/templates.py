"""Job templates, exactly as the product guide lists them."""

from __future__ import annotations

from flask import current_app
from flask.views import MethodView

from api.auth import actor, read_access, write_access
from api.json_body import ResourceBlueprint, with_changed
from dispatcher.catalog import templates
from schemas.templates import (
    TemplateCreate,
    TemplateList,
    TemplateQuery,
    TemplateSchema,
    TemplateUpdate,
    TemplateUpdated,
)

blp = ResourceBlueprint("templates", __name__, description="Reusable job documents")


def _max_document_bytes() -> int:
    return current_app.config["SETTINGS"].max_document_bytes


@blp.route("/jobs/templates")
class Templates(MethodView):
    @blp.view(read_access, TemplateList, query=TemplateQuery)
    def get(self, query: dict):
        """Templates, oldest first; filter by ``category`` and ``active``."""
        return templates.list_templates(
            query.get("category"), query.get("active"), query["limit"], query["offset"]
        )

    @blp.view(write_access, TemplateSchema, 201, body=TemplateCreate)
    def post(self, body: dict):
        """Create a template; its name is unique (409 on a duplicate)."""
        return templates.create_template(body, actor(), _max_document_bytes())


@blp.route("/jobs/templates/<int:template_id>")
class Template(MethodView):
    get = blp.one(read_access, TemplateSchema, templates.get_template)

    @blp.view(write_access, TemplateUpdated, body=TemplateUpdate)
    def put(self, body: dict, template_id: int):
        """Change any subset of the fields; answers the template and what changed."""
        return with_changed(templates.update_template(
            template_id, body, actor(), _max_document_bytes()))

    @blp.view(write_access, TemplateSchema)
    def delete(self, template_id: int):
        """Delete a template; executions made from it are kept. Answers it as it was."""
        return templates.delete_template(template_id, actor())
