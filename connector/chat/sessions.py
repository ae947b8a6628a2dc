"""One open websocket, as the engine sees it: a visitor's tab or an agent's console."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from connector.chat.hub import Subscriber

__all__ = ["AgentSession", "VisitorSession"]


@dataclass(eq=False)
class VisitorSession:
    """A visitor's websocket. `visitor_id` is set by `hello`; `conversation_id` by
    `chat.start` or a `resume`."""

    subscriber: Subscriber
    ip: str
    visitor_id: str | None = None
    widget_id: str | None = None
    conversation_id: str | None = None
    identity: Any = None  # a verified `connector.chat.tokens.Identity`, from `hello`


@dataclass(eq=False)
class AgentSession:
    """An agent's console websocket, signed in as `agent_id`."""

    subscriber: Subscriber
    agent_id: str
    # The user holds a supervisor role (checked at connect; connector/web/auth.py).
    supervisor: bool = False
