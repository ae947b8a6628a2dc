"""The CRM Chat service: `create_app` wires settings, Dataverse, the API and the pages."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from functools import partial
from typing import Any

from flask import Flask
from flask_compress import Compress
from werkzeug.middleware.dispatcher import DispatcherMiddleware
from werkzeug.middleware.proxy_fix import ProxyFix

from connector import services
from connector.channels import service as channels
from connector.chat.actions import conversations
from connector.chat.engine import ChatEngine
from connector.chat.hub import Hub
from connector.chat.live import open_live
from connector.chat.org_sync import OrgSync
from connector.chat.ports import DirectoryLike, OutboxLike
from connector.chat.redis_state import RedisLiveState
from connector.chat.tokens import ChatTokens
from connector.crm import retention
from connector.crm.app_tables import AppTables
from connector.crm.chat_activity import CHAT_ACTIVITY_KIND, chat_activity_handler
from connector.crm.connection import DATAVERSE_PATH, connect
from connector.logs import configure_logging
from connector.private_files import make_private_dir
from connector.services import Services, services_of
from connector.settings import Settings
from connector.web import (
    admin,
    agent_api,
    attachments,
    auth,
    cors,
    designer_api,
    embed,
    errors,
    health,
    internal_api,
    metrics_page,
    pages,
    privacy_api,
    public_limits,
    request_log,
    sockets,
    standin,
    supervisor_api,
    transcripts,
    widget_api,
)
from connector.web.standin_context import with_session_cookie

__all__ = ["create_app", "print_addresses", "run_server", "settings_of", "stop_app"]

log = logging.getLogger("crmchat")


# What the service compresses: its text. Brotli first (~15% smaller than gzip on the
# widget), gzip for the rest; chosen by the request's Accept-Encoding.
COMPRESSED_TYPES = (
    "text/html",
    "text/css",
    "text/javascript",
    "application/javascript",
    "application/json",
    "image/svg+xml",
)


def _init_compression(app: Flask) -> None:
    """gzip / brotli for text responses (flask-compress). Streamed responses (files sent
    with send_from_directory, websockets) stay as they are: the widget's files are sent as
    bytes for this reason (`connector/web/embed.py`)."""
    app.config.update(
        COMPRESS_ALGORITHM=["br", "gzip"],
        COMPRESS_MIMETYPES=list(COMPRESSED_TYPES),
        COMPRESS_STREAMS=False,
        COMPRESS_BR_LEVEL=5,
        COMPRESS_LEVEL=6,
    )
    Compress(app)


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
    configure_logging(settings.log_level, settings.log_format)
    make_private_dir(settings.data_dir)
    connection = connect(settings)

    app = Flask(__name__, static_folder=None)
    app.config["MAX_CONTENT_LENGTH"] = 1024 * 1024  # the service's own API takes small JSON
    request_log.init_app(app)
    errors.init_app(app)
    cors.init_app(app)
    _init_compression(app)
    services.init_app(
        app,
        _services(settings, connection.client, connection.service_secret, directory, outbox),
    )
    app.config["SOCK_SERVER_OPTIONS"] = sockets.SOCK_SERVER_OPTIONS
    for blueprint in (
        health.bp,
        metrics_page.bp,
        auth.bp,
        admin.bp,
        designer_api.bp,
        pages.bp,
        widget_api.bp,
        transcripts.bp,
        attachments.bp,
        agent_api.bp,
        attachments.agent_bp,
        supervisor_api.bp,
        privacy_api.bp,
        internal_api.bp,
        embed.bp,
        sockets.bp,
    ):
        app.register_blueprint(blueprint)
    public_limits.init_app(app)
    channels.init_app(app, settings, embedded=connection.embedded_app is not None)

    if connection.embedded_app is not None:
        # The stand-in signs people in without a password: embedded and local only.
        standin.init_app(app, connection.embedded_app, demo=settings.demo)
        app.wsgi_app = DispatcherMiddleware(  # type: ignore[method-assign]
            app.wsgi_app,
            # Same-origin pages outside the app sign in by the stand-in's session cookie.
            {DATAVERSE_PATH: with_session_cookie(connection.embedded_app)},
        )
    if settings.behind_proxy:
        # One proxy in front: take the client address, scheme and host it reports.
        app.wsgi_app = ProxyFix(  # type: ignore[method-assign]
            app.wsgi_app, x_for=1, x_proto=1, x_host=1
        )
    if start:
        _start_chat(app)
        retention.init_app(app, connection.client, services_of(app).engine.state)
    return app


def _services(
    settings: Settings,
    client: Any,
    secret: bytes,
    directory: DirectoryLike | None,
    outbox: OutboxLike | None,
) -> Services:
    """The service's collaborators: the token signer, the live chat engine with its
    Directory (cached CRM config) and Outbox."""
    owned_directory: Any = None
    if directory is None:
        from connector.crm.directory import Directory

        owned_directory = directory = Directory(client)
    owned_outbox: Any = None
    known = directory

    def user_of_agent(agent_id: str) -> str | None:
        agent = known.agent(agent_id)
        return agent.user_id if agent is not None else None

    redis_url = settings.redis_url.get_secret_value() if settings.redis_url else None
    live = open_live(settings.data_dir, redis_url, threads=settings.threads)
    if outbox is None:
        owned_outbox = live.outbox(
            {
                CHAT_ACTIVITY_KIND: chat_activity_handler(
                    client, secret=secret, user_of_agent=user_of_agent
                )
            }
        )
        outbox = owned_outbox
    org = (
        OrgSync(live.client, live.state, prefix=live.prefix)
        if live.client is not None and isinstance(live.state, RedisLiveState)
        else None
    )
    engine = ChatEngine(
        live.state,
        Hub(),
        directory,
        outbox,
        ChatTokens(secret),
        bus=live.bus,
        timers=live.timers,
        org=org,
        process_id=live.process_id,
    )
    live.heartbeat.on_dead = engine.process_died
    if owned_directory is not None:
        owned_directory.on_refresh(partial(conversations.do_refresh_availability, engine))
    return Services(
        settings=settings,
        dataverse=client,
        tokens=auth.service_token_signer(secret),
        standing=auth.UserStanding(client),
        directory=directory,
        outbox=outbox,
        engine=engine,
        owned_directory=owned_directory,
        owned_outbox=owned_outbox,
        live=live,
        app_tables=AppTables(client),
    )


def _start_chat(app: Flask) -> None:
    """Start the background threads, once the demo records (if any) are in Dataverse: the
    Directory's first snapshot is read here."""
    found = services_of(app)
    if found.owned_directory is not None:
        found.owned_directory.start()
    if found.live.shared:
        # Beating before the first socket: only live processes' sockets are counted.
        found.live.heartbeat.start()
    found.engine.start()
    channels.start(app)
    if found.owned_outbox is not None:
        found.owned_outbox.start()


def stop_app(app: Flask) -> None:
    """Stop the chat's background threads and close its state (for tests and shutdown)."""
    found = services_of(app)
    found.engine.stop()
    channels.stop(app)
    retention.stop(app)
    if found.owned_directory is not None:
        found.owned_directory.stop()
    if found.owned_outbox is not None:
        found.owned_outbox.stop()
        found.owned_outbox.close()
    found.live.close()
    health.stop(app)


def settings_of(app: Flask) -> Settings:
    return services_of(app).settings


def print_addresses(settings: Settings) -> None:
    """Where to open the service, printed at start."""
    print(f"CRM Chat is running at {settings.base_url}/", flush=True)
    if settings.embedded:
        print(f"  embedded Dataverse Web API: {settings.base_url}{DATAVERSE_PATH}/", flush=True)
        print(f"  the CRM Chat app (local stand-in): {settings.base_url}/app/", flush=True)
        print(f"  demo website with the chat widget: {settings.base_url}/demo/", flush=True)
        print(
            f"  Messenger/Instagram/WhatsApp/Viber simulator: {settings.base_url}/simulator/",
            flush=True,
        )
    print(f"  settings page: {settings.base_url}{pages.SETTINGS_PAGE}", flush=True)


def run_server(app: Flask) -> None:
    """Development only (`crmchat serve --dev`): werkzeug, one thread per connection."""
    from werkzeug.serving import run_simple

    from connector.http_server import JsonErrorRequestHandler

    settings = settings_of(app)
    print_addresses(settings)
    run_simple(
        settings.host,
        settings.port,
        app,
        threaded=True,
        use_reloader=False,
        request_handler=JsonErrorRequestHandler,
    )
