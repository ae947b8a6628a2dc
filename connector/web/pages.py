"""The web resources, served as files so the same HTML runs here and inside Dataverse."""

from __future__ import annotations

from flask import Blueprint, Response, current_app, redirect, send_from_directory

from connector.services import services_of
from connector.solution.paths import WEBRESOURCES_DIR

__all__ = ["bp"]

bp = Blueprint("pages", __name__)

# Web resources change with every release; a short cache keeps reloads cheap yet current.
WEBRESOURCE_MAX_AGE_SECS = 60


@bp.get("/")
def index() -> Response:
    # On the embedded default the stand-in app is the way in; elsewhere the CRM is.
    embedded = services_of(current_app).settings.embedded
    target = "/app/" if embedded else "/webresources/settings/index.html"
    return redirect(target)  # type: ignore[return-value]


@bp.get("/webresources/<path:name>")
def webresource(name: str) -> Response:
    # send_from_directory refuses paths that leave the folder (404), so no traversal.
    response = send_from_directory(WEBRESOURCES_DIR, name, max_age=WEBRESOURCE_MAX_AGE_SECS)
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response
