"""The widget's files at /widget/* (loader.js, widget.js, widget.css) for any site."""

from __future__ import annotations

from flask import Blueprint, Response, send_from_directory

from connector.solution.paths import WEBRESOURCES_DIR

__all__ = ["WIDGET_MAX_AGE_SECS", "bp"]

bp = Blueprint("embed", __name__)

# Every page view of a customer's site loads the loader: let browsers and CDNs keep it for
# five minutes, short enough that a release reaches visitors the same hour.
WIDGET_MAX_AGE_SECS = 300


@bp.get("/widget/<path:name>")
def widget_file(name: str) -> Response:
    # send_from_directory refuses paths that leave the folder (404), so no traversal.
    response = send_from_directory(WEBRESOURCES_DIR / "widget", name, max_age=WIDGET_MAX_AGE_SECS)
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Access-Control-Allow-Origin"] = "*"
    return response
