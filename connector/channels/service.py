"""The channels in the service: accounts, intake, send clients, webhooks, simulator.

`init_app(app, settings, embedded=...)` wires them; `start(app)` / `stop(app)` run the
intake's worker. On the embedded default the demo accounts (one per channel, fresh
secrets) are served and the simulator is mounted, and the send clients point at it
unless CRMCHAT_META_GRAPH_URL / CRMCHAT_VIBER_API_URL say otherwise.
"""

from __future__ import annotations

from flask import Flask

from connector.settings import Settings

from . import simulator, webhooks
from .accounts import StaticAccounts, demo_accounts
from .intake import ChannelIntake, RecentEvents
from .replies import ChannelClients

__all__ = ["META_GRAPH_URL", "VIBER_API_URL", "init_app", "start", "stop"]

META_GRAPH_URL = "https://graph.facebook.com"
VIBER_API_URL = "https://chatapi.viber.com"


def init_app(app: Flask, settings: Settings, *, embedded: bool) -> None:
    sink = RecentEvents()
    intake = ChannelIntake(sink)
    accounts = demo_accounts() if embedded else StaticAccounts([])
    meta_url = settings.meta_graph_url or (
        settings.base_url + simulator.GRAPH_PATH if embedded else META_GRAPH_URL
    )
    viber_url = settings.viber_api_url or (
        settings.base_url + simulator.VIBER_PATH if embedded else VIBER_API_URL
    )
    app.extensions["crmchat.channel_events"] = sink
    app.extensions["crmchat.channel_clients"] = ChannelClients.for_urls(
        meta_graph_url=meta_url, viber_api_url=viber_url
    )
    webhooks.init_app(app, accounts, intake)
    if embedded:
        simulator.init_app(app, accounts, service_url=settings.base_url)


def start(app: Flask) -> None:
    intake: ChannelIntake = app.extensions["crmchat.channel_intake"]
    intake.start()


def stop(app: Flask) -> None:
    intake: ChannelIntake | None = app.extensions.get("crmchat.channel_intake")
    if intake is not None:
        intake.stop()
