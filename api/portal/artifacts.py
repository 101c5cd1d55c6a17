"""Artifacts: the list with where each is used, upload with a progress bar, delete; and the
artifacts offered to the template editor for ``download-file`` steps."""

from __future__ import annotations

from flask import current_app, flash, redirect, render_template, request, url_for

from api.artifacts import artifact_storage
from api.auth import actor
from api.portal import bp
from api.portal.forms import FormInvalid, done, load
from api.portal.sessions import admin_only, session_principal
from dispatcher.catalog import artifacts
from dispatcher.catalog.artifact_storage import TooLarge
from dispatcher.catalog.artifacts import ChecksumMismatch
from schemas.artifacts import ArtifactUploadQuery

PAGE_SIZE = 100
OFFERED_TO_EDITOR = 50


@bp.before_app_request
def _uploads_may_be_large() -> None:
    """A signed-in operator's upload may be as large as ARTIFACT_MAX_BYTES, not the API's
    usual body limit; checked before the CSRF check reads the form (no one else gets to)."""
    if request.endpoint != "portal.upload_artifact":
        return
    settings = current_app.config["SETTINGS"]
    if session_principal(settings) is not None:
        request.max_content_length = settings.artifact_max_bytes


@bp.app_context_processor
def _artifact_choices() -> dict:
    def artifact_choices() -> list[dict]:
        return artifacts.list_artifacts(OFFERED_TO_EDITOR, 0)["artifacts"]

    return {"artifact_choices": artifact_choices}


@bp.route("/artifacts")
def artifact_list():
    listing = artifacts.list_artifacts(PAGE_SIZE, 0)
    return render_template("artifacts.html", listing=listing)


@bp.route("/artifacts", methods=["POST"])
@admin_only
def upload_artifact():
    upload = request.files.get("file")
    if upload is None or not upload.filename:
        flash("Choose a file to upload.", "bad")
        return redirect(url_for("portal.artifact_list"))
    fields = {"name": request.form.get("name") or upload.filename}
    if request.form.get("sha256"):
        fields["sha256"] = request.form["sha256"]
    settings = current_app.config["SETTINGS"]
    try:
        query = load(ArtifactUploadQuery(), fields)
        artifact, created = artifacts.store_artifact(
            artifact_storage(), query["name"], upload.stream, upload.mimetype or None,
            query.get("sha256"), settings.artifact_max_bytes, actor())
    except (FormInvalid, ChecksumMismatch, TooLarge) as exc:
        flash(f"Not uploaded: {exc}", "bad")
        return redirect(url_for("portal.artifact_list"))
    flash(f"Artifact {artifact['name']} {'uploaded' if created else 'was already stored'} "
          f"({artifact['size']} bytes, sha256 {artifact['sha256']}).", "ok")
    return redirect(url_for("portal.artifact_list"))


@bp.route("/artifacts/<artifact_id>/delete", methods=["POST"])
@admin_only
def delete_artifact(artifact_id: str):
    artifact = artifacts.delete_artifact(artifact_storage(), artifact_id, actor())
    return done(f"Artifact {artifact['name']} deleted.", "portal.artifact_list")
