"""`/healthz`: is the service up, and can it reach Dataverse?"""

from __future__ import annotations

from flask import Blueprint, current_app

from connector.dataverse import DataverseError

__all__ = ["bp"]

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz() -> tuple[dict[str, object], int]:
    settings = current_app.extensions["crmchat.settings"]
    client = current_app.extensions["crmchat.dataverse"]
    try:
        client.who_am_i()
    except DataverseError as error:
        return {"status": "degraded", "dataverse": f"unreachable ({error.status})"}, 503
    mode = "embedded" if settings.embedded else "environment"
    return {"status": "ok", "dataverse": mode}, 200
