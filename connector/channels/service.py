"""The channels in the service: accounts, intake, send clients, the engine bridge.

`init_app(app, settings, embedded=...)` builds one `ChannelServices` on the app's
`Services` (after the engine), registers the webhooks and, on the embedded default, the
simulator; `start(app)` / `stop(app)` run the intake's worker. Accounts are the rows of
`crmchat_channelaccount` (the demo seeds one per channel on the embedded default). The
send clients point at the platforms, or at the simulator on the embedded default, unless
CRMCHAT_META_GRAPH_URL / CRMCHAT_VIBER_API_URL say otherwise.
"""

from __future__ import annotations

from flask import Flask

from connector.chat.actions.channels import ChannelBridge
from connector.services import services_of
from connector.settings import Settings

from . import setup, simulator, webhooks
from .accounts import DataverseAccounts
from .files import FileLinks
from .intake import ChannelIntake
from .replies import ChannelClients
from .shared import ChannelServices, channels_of
from .templates import TemplateSync

__all__ = ["META_GRAPH_URL", "VIBER_API_URL", "init_app", "start", "stop"]

META_GRAPH_URL = "https://graph.facebook.com"
VIBER_API_URL = "https://chatapi.viber.com"


def init_app(app: Flask, settings: Settings, *, embedded: bool) -> None:
    found = services_of(app)
    meta_url = settings.meta_graph_url or (
        settings.base_url + simulator.GRAPH_PATH if embedded else META_GRAPH_URL
    )
    viber_url = settings.viber_api_url or (
        settings.base_url + simulator.VIBER_PATH if embedded else VIBER_API_URL
    )
    accounts = DataverseAccounts(found.dataverse)
    clients = ChannelClients.for_urls(meta_graph_url=meta_url, viber_api_url=viber_url)
    bridge = ChannelBridge(
        found.engine,
        accounts,
        clients,
        claims=found.live.state,
        # Signed with the service secret (its own salt): links valid on every process.
        file_links=FileLinks(found.tokens.secret_key, settings.base_url),
        dataverse=found.dataverse,
        app_tables=found.app_tables,
    )
    # With several processes (Redis) the redelivery memory is shared, else in-process.
    claims = found.live.state if found.live.shared else None
    intake = ChannelIntake(bridge, claims=claims)
    templates = TemplateSync(
        found.dataverse,
        clients.meta,
        accounts,
        claims=found.live.state,
        interval_secs=settings.template_sync_minutes * 60,
    )
    found.channels = ChannelServices(accounts, intake, clients, bridge, templates)
    app.register_blueprint(webhooks.bp)
    app.register_blueprint(setup.bp)
    if embedded:
        simulator.init_app(app, service_url=settings.base_url, accounts=accounts)


def start(app: Flask) -> None:
    channels = channels_of(app)
    channels.intake.start()
    if channels.templates is not None:
        channels.templates.start()


def stop(app: Flask) -> None:
    found = services_of(app).channels
    if isinstance(found, ChannelServices):
        found.intake.stop()
        found.bridge.stop()
        if found.templates is not None:
            found.templates.stop()
