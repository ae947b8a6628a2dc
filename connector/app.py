"""The CRM Chat service: `create_app` wires settings, Dataverse, the API and the pages."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from flask import Flask
from werkzeug.middleware.dispatcher import DispatcherMiddleware

from connector.crm.connection import DATAVERSE_PATH, connect
from connector.settings import Settings
from connector.web import admin, auth, errors, health, pages

__all__ = ["create_app", "run_server", "settings_of", "dataverse_of"]

log = logging.getLogger("crmchat")


def create_app(overrides: Mapping[str, Any] | None = None) -> Flask:
    """The service: defaults, then `CRMCHAT_*` environment variables, then `overrides`.

    On the embedded default the embedded Dataverse is mounted at /api/data/v9.2, so a
    browser (and the model-driven app stand-in) reaches it at the same origin.
    """
    settings = Settings(**dict(overrides or {}))
    logging.basicConfig(
        level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    connection = connect(settings)

    app = Flask(__name__, static_folder=None)
    app.config["MAX_CONTENT_LENGTH"] = 1024 * 1024  # the service's own API takes small JSON
    app.extensions["crmchat.settings"] = settings
    app.extensions["crmchat.dataverse"] = connection.client
    errors.init_app(app)
    auth.init_app(app, secret=connection.service_secret)
    for blueprint in (health.bp, auth.bp, admin.bp, pages.bp):
        app.register_blueprint(blueprint)

    if connection.embedded_app is not None:
        app.wsgi_app = DispatcherMiddleware(  # type: ignore[method-assign]
            app.wsgi_app, {DATAVERSE_PATH: connection.embedded_app}
        )
    return app


def settings_of(app: Flask) -> Settings:
    settings: Settings = app.extensions["crmchat.settings"]
    return settings


def dataverse_of(app: Flask) -> Any:
    return app.extensions["crmchat.dataverse"]


def run_server(app: Flask) -> None:
    """Serve `app` on the configured host and port, one thread per connection."""
    from werkzeug.serving import run_simple

    settings = settings_of(app)
    print(f"CRM Chat is running at {settings.public_url}/", flush=True)
    if settings.embedded:
        print(f"  embedded Dataverse Web API: {settings.public_url}{DATAVERSE_PATH}/", flush=True)
    print(f"  settings page: {settings.public_url}/webresources/settings/index.html", flush=True)
    run_simple(settings.host, settings.port, app, threaded=True, use_reloader=False)
