"""The CRM Chat service: `create_app` wires settings, Dataverse, the API and the pages."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from flask import Flask
from werkzeug.middleware.dispatcher import DispatcherMiddleware
from werkzeug.middleware.proxy_fix import ProxyFix

from connector.chat.actions import ChatEngine
from connector.chat.hub import Hub
from connector.chat.ports import DirectoryLike, OutboxLike
from connector.chat.state import SqliteLiveState
from connector.chat.tokens import ChatTokens
from connector.crm.chat_activity import CHAT_ACTIVITY_KIND, chat_activity_handler
from connector.crm.connection import DATAVERSE_PATH, connect
from connector.private_files import make_private_dir
from connector.settings import Settings
from connector.web import (
    admin,
    agent_api,
    auth,
    cors,
    designer_api,
    embed,
    errors,
    health,
    internal_api,
    pages,
    sockets,
    standin,
    widget_api,
)

__all__ = ["create_app", "run_server", "settings_of", "stop_app"]

log = logging.getLogger("crmchat")


def create_app(
    overrides: Mapping[str, Any] | None = None,
    *,
    directory: DirectoryLike | None = None,
    outbox: OutboxLike | None = None,
    start: bool = True,
) -> Flask:
    """The service: defaults, then `CRMCHAT_*` environment variables, then `overrides`.

    On the embedded default the embedded Dataverse is mounted at /api/data/v9.2, so a
    browser (and the model-driven app stand-in) reaches it at the same origin.

    The live chat keeps its state in `<data_dir>/live.sqlite` and its pending Dataverse
    writes in `<data_dir>/outbox.sqlite`. Tests may pass their own `directory` and
    `outbox`; with `start` false no background thread (outbox, finisher) is started.
    `stop_app(app)` stops them and closes the live state.
    """
    settings = Settings(**dict(overrides or {}))
    logging.basicConfig(
        level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    make_private_dir(settings.data_dir)
    connection = connect(settings)

    app = Flask(__name__, static_folder=None)
    app.config["MAX_CONTENT_LENGTH"] = 1024 * 1024  # the service's own API takes small JSON
    app.extensions["crmchat.settings"] = settings
    app.extensions["crmchat.dataverse"] = connection.client
    errors.init_app(app)
    cors.init_app(app)
    auth.init_app(app, secret=connection.service_secret, client=connection.client)
    _init_chat(
        app, settings, connection.client, connection.service_secret, directory, outbox, start
    )
    app.config["SOCK_SERVER_OPTIONS"] = sockets.SOCK_SERVER_OPTIONS
    for blueprint in (
        health.bp,
        auth.bp,
        admin.bp,
        designer_api.bp,
        pages.bp,
        widget_api.bp,
        agent_api.bp,
        internal_api.bp,
        embed.bp,
        sockets.bp,
    ):
        app.register_blueprint(blueprint)

    if connection.embedded_app is not None:
        # The stand-in signs people in without a password: embedded and local only.
        standin.init_app(app, connection.embedded_app, demo=settings.demo)
        app.wsgi_app = DispatcherMiddleware(  # type: ignore[method-assign]
            app.wsgi_app, {DATAVERSE_PATH: connection.embedded_app}
        )
    if settings.behind_proxy:
        # One proxy in front: take the client address, scheme and host it reports.
        app.wsgi_app = ProxyFix(  # type: ignore[method-assign]
            app.wsgi_app, x_for=1, x_proto=1, x_host=1
        )
    return app


def _init_chat(
    app: Flask,
    settings: Settings,
    client: Any,
    secret: bytes,
    directory: DirectoryLike | None,
    outbox: OutboxLike | None,
    start: bool,
) -> None:
    """The live chat engine with its Directory (cached CRM config) and Outbox."""
    if directory is None:
        from connector.crm.directory import Directory

        directory = Directory(client)
    owned_outbox: Any = None
    known = directory

    def user_of_agent(agent_id: str) -> str | None:
        agent = known.agent(agent_id)
        return agent.user_id if agent is not None else None

    if outbox is None:
        from connector.crm.outbox import Outbox

        owned_outbox = Outbox(
            settings.data_dir / "outbox.sqlite",
            {
                CHAT_ACTIVITY_KIND: chat_activity_handler(
                    client, secret=secret, user_of_agent=user_of_agent
                )
            },
        )
        outbox = owned_outbox
    state = SqliteLiveState(settings.data_dir / "live.sqlite")
    engine = ChatEngine(state, Hub(), directory, outbox, ChatTokens(secret))
    app.extensions["crmchat.directory"] = directory
    app.extensions["crmchat.outbox"] = outbox
    app.extensions["crmchat.chat"] = engine
    app.extensions["crmchat.owned_outbox"] = owned_outbox
    if start:
        engine.start()
        if owned_outbox is not None:
            owned_outbox.start()


def stop_app(app: Flask) -> None:
    """Stop the chat's background threads and close its state (for tests and shutdown)."""
    engine: ChatEngine = app.extensions["crmchat.chat"]
    engine.stop()
    owned_outbox = app.extensions.get("crmchat.owned_outbox")
    if owned_outbox is not None:
        owned_outbox.stop()
        owned_outbox.close()
    engine.state.close()


def settings_of(app: Flask) -> Settings:
    settings: Settings = app.extensions["crmchat.settings"]
    return settings


def run_server(app: Flask) -> None:
    """Serve `app` on the configured host and port, one thread per connection."""
    from werkzeug.serving import run_simple

    from connector.http_server import JsonErrorRequestHandler

    settings = settings_of(app)
    print(f"CRM Chat is running at {settings.base_url}/", flush=True)
    if settings.embedded:
        print(f"  embedded Dataverse Web API: {settings.base_url}{DATAVERSE_PATH}/", flush=True)
        print(f"  the CRM Chat app (local stand-in): {settings.base_url}/app/", flush=True)
        print(f"  demo website with the chat widget: {settings.base_url}/demo/", flush=True)
    print(f"  settings page: {settings.base_url}/webresources/settings/index.html", flush=True)
    run_simple(
        settings.host,
        settings.port,
        app,
        threaded=True,
        use_reloader=False,
        request_handler=JsonErrorRequestHandler,
    )
