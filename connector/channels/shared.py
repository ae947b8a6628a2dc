"""`ChannelServices`: what the webhooks, the simulator and the engine bridge share.

One per app, on the app's `Services.channels` (built by `connector.channels.service`);
views reach it through `channels_of(current_app)`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from connector.services import services_of

from .accounts import ChannelAccounts
from .intake import ChannelIntake
from .replies import ChannelClients
from .templates import TemplateSync

if TYPE_CHECKING:
    from flask.sansio.app import App

    from connector.chat.actions.channels import ChannelBridge

__all__ = ["ChannelServices", "channels_of"]


@dataclass
class ChannelServices:
    accounts: ChannelAccounts
    intake: ChannelIntake
    clients: ChannelClients
    bridge: ChannelBridge
    templates: TemplateSync | None = None


def channels_of(app: App) -> ChannelServices:
    """The app's channels (bound by `connector.channels.service.init_app`)."""
    found = services_of(app).channels
    assert isinstance(found, ChannelServices), "the channels are not wired into this app"
    return found
