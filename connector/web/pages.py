"""The web resources, served where an organization serves them, so the same HTML runs here
and inside Dataverse.

A web resource named `crmchat_/settings/index.html` is at
`<org>/WebResources/crmchat_/settings/index.html` (Microsoft Learn, "Web resources in
model-driven apps", "Reference web resources"), and that is the only address here too: a
page that works here therefore reaches its neighbours by the relative paths it will use in
a tenant (`../common/signin.js`, `../../ClientGlobalContext.js.aspx`). Only the names
customizations.xml lists are served, as an organization has only those: the stand-in's own
files (`webresources/standin/`) are not web resources and answer 404 here.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from functools import lru_cache

from flask import Blueprint, Response, current_app, redirect, send_from_directory

from connector.services import services_of
from connector.solution.pack import WEBRESOURCE_PREFIX, read_web_resources
from connector.solution.paths import CUSTOMIZATIONS_XML, WEBRESOURCES_DIR
from connector.web.errors import NotFound
from connector.web.standin_context import WEBRESOURCES_PATH

__all__ = ["SETTINGS_PAGE", "WEBRESOURCE_MAX_AGE_SECS", "bp", "web_resource_names"]

bp = Blueprint("pages", __name__)

# Web resources change with every release; a short cache keeps reloads cheap yet current.
WEBRESOURCE_MAX_AGE_SECS = 60
SETTINGS_PAGE = WEBRESOURCES_PATH + "crmchat_/settings/index.html"


@lru_cache(maxsize=1)
def web_resource_names() -> frozenset[str]:
    """The web resource names the solution lists (`crmchat_/console/index.html`, ...)."""
    return frozenset(r.name for r in read_web_resources(ET.parse(CUSTOMIZATIONS_XML).getroot()))


@bp.get("/")
def index() -> Response:
    # On the embedded default the stand-in app is the way in; elsewhere the CRM is.
    embedded = services_of(current_app).settings.embedded
    target = "/app/" if embedded else SETTINGS_PAGE
    return redirect(target)  # type: ignore[return-value]


@bp.get(WEBRESOURCES_PATH + "<path:name>")
def webresource(name: str) -> Response:
    if name not in web_resource_names():
        raise NotFound(f"There is no web resource {name[:200]!r}.")
    # Every listed name is crmchat_/<path under webresources/> (`crmchat solution check`);
    # send_from_directory refuses paths that leave the folder (404), so no traversal.
    relative = name.removeprefix(WEBRESOURCE_PREFIX)
    response = send_from_directory(WEBRESOURCES_DIR, relative, max_age=WEBRESOURCE_MAX_AGE_SECS)
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response
