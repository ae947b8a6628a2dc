"""The service's collaborators, in one typed object per app: `services_of(app)`.

`create_app` builds them in order (settings, the Dataverse client, the token signer, the
Directory, the Outbox, the chat engine) and binds one `Services` to the app; views reach
them through `services_of(current_app)` instead of string keys in `app.extensions`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from flask.sansio.app import App
    from itsdangerous import URLSafeTimedSerializer

    from connector.chat.engine import ChatEngine
    from connector.chat.ports import DirectoryLike, OutboxLike
    from connector.settings import Settings
    from connector.web.auth import UserStanding

__all__ = ["EXTENSION_KEY", "Services", "init_app", "services_of"]

# The one key under `app.extensions` (Flask's place for an extension's state).
EXTENSION_KEY = "crmchat"


@dataclass
class Services:
    """What the views and sockets work with; one per app."""

    settings: Settings
    dataverse: Any  # DataverseClient, or a test's fake of it
    tokens: URLSafeTimedSerializer  # signs the service token agents and admins send
    standing: UserStanding  # each signed-in user's roles as Dataverse has them now
    directory: DirectoryLike
    outbox: OutboxLike
    engine: ChatEngine
    # Started and stopped with the app when create_app made them (not a test's fakes).
    owned_directory: Any = None
    owned_outbox: Any = None
    # This process's live chat parts (connector.chat.live.LiveParts): state, bus, timers.
    live: Any = None
    # The embedded Dataverse's WSGI app, behind the stand-in pages (embedded only).
    standin: Any = None
    # The messaging channels (connector.channels.service.ChannelServices).
    channels: Any = None
    # Which Dynamics 365 tables the organization has (connector.crm.app_tables.AppTables);
    # None: a test's app, where every one counts as present.
    app_tables: Any = None


def init_app(app: App, services: Services) -> None:
    app.extensions[EXTENSION_KEY] = services


def services_of(app: App) -> Services:
    """The app's collaborators (bound by `create_app`)."""
    services: Services = app.extensions[EXTENSION_KEY]
    return services
