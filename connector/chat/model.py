"""The live chat's nouns: conversations, messages, participants, visitor and agent presence.

Plain dataclasses; `connector.chat.state` stores them and `connector.chat.views` turns them
into the wire shapes of docs/protocol.md. Times are timezone-aware UTC datetimes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

__all__ = [
    "AgentPresence",
    "AgentStatus",
    "Conversation",
    "ConversationKind",
    "ConversationState",
    "HistoryEntry",
    "Message",
    "Participant",
    "SenderKind",
    "VisitorPresence",
    "utc_now",
]


def utc_now() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(UTC)


class AgentStatus(StrEnum):
    AVAILABLE = "available"
    BUSY = "busy"
    AWAY = "away"
    # Set by the service, never chosen: an offer rang past its topic's answer time limit
    # (connector/chat/actions/queues.py). The agent picks Available to come back.
    PAUSED = "paused"


class ConversationKind(StrEnum):
    VISITOR = "visitor"  # a website visitor and one or more agents
    AGENT = "agent"  # two agents talking to each other


class ConversationState(StrEnum):
    WAITING = "waiting"  # started by the visitor, offered, nobody accepted yet
    ACTIVE = "active"
    ENDED = "ended"


class SenderKind(StrEnum):
    VISITOR = "visitor"
    AGENT = "agent"
    SYSTEM = "system"


@dataclass
class Participant:
    """Someone who takes (or took) part in a conversation; `active` false once they left."""

    kind: str  # "visitor" or "agent"
    id: str
    name: str
    active: bool = True

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "id": self.id, "name": self.name, "active": self.active}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Participant:
        return cls(
            kind=data["kind"], id=data["id"], name=data["name"], active=data.get("active", True)
        )


@dataclass
class Conversation:
    """One chat. Agents in `participants`; the visitor is described by the visitor_* fields."""

    conversation_id: str
    kind: ConversationKind
    state: ConversationState
    started_at: datetime
    widget_id: str | None = None
    visitor_id: str | None = None
    visitor_name: str = ""
    visitor_fields: dict[str, str] = field(default_factory=dict)
    # The Omnichannel context, checked: name -> {"value", "isDisplayable"} (chat/context.py).
    context: dict[str, Any] = field(default_factory=dict)
    page: str = ""
    ip: str = ""
    participants: list[Participant] = field(default_factory=list)
    accepted_at: datetime | None = None
    ended_at: datetime | None = None
    ended_by: str | None = None  # "visitor" or "agent"
    owner_agent_id: str | None = None  # who accepted, or was transferred to
    rating: int | None = None
    regarding: dict[str, str] | None = None  # {"table","id","name"}
    last_visitor_message_at: datetime | None = None
    waiting_since: datetime | None = None  # oldest visitor message no agent answered yet
    last_seq: int = 0
    start_client_id: str | None = None
    # Set while an ended visitor chat waits for its rating; the activity is written then.
    finish_due_at: datetime | None = None
    finished: bool = False  # the chat activity is in the outbox
    topic_id: str | None = None  # the topic the visitor chose; routing follows it
    identity: dict[str, Any] | None = None  # the verified identity (Identity.to_dict())
    contact: dict[str, str] | None = None  # {"id","name"} found by record identification
    labels: list[str] = field(default_factory=list)  # crmchat_label ids
    timed_out: bool = False  # nobody accepted in time (ticket fallback)
    # The CRM user who asked for help (an internal chat): never offered their own request.
    requester_user_id: str | None = None
    # A messaging channel's conversation (connector/chat/actions/channels.py): {"type",
    # "account", "account_name", "person", "subscribed"}; None for web and agent chats.
    channel: dict[str, Any] | None = None
    # Agents who rejected the offer while it waited: never offered it again (actions/offers.py).
    declined_agent_ids: list[str] = field(default_factory=list)
    # The consent the visitor gave before the chat: {"text", "at"} (design privacy).
    consent: dict[str, str] | None = None
    # What the agent chose from the topic's list when ending it (chat/dispositions.py).
    disposition: str | None = None
    # The one agent a waiting chat rings for now, and since when (actions/queues.py).
    ringing_agent_id: str | None = None
    ring_started_at: datetime | None = None
    # Consult (actions/consults.py): on a consult thread (kind AGENT), the visitor chat it
    # is about; on a visitor chat, its consult threads, written as notes on its activity.
    consult_of: str | None = None
    consult_ids: list[str] = field(default_factory=list)
    # Wrap-up (actions/wrapup.py): the visitor ended (or the chat timed out) and the agent
    # still picks the disposition, until this time; `finish_held`: the activity's write
    # was due meanwhile and waits for the wrap-up's end.
    wrapup_until: datetime | None = None
    finish_held: bool = False
    # Postponed by its agent (actions/postpone.py) until this time, or the customer's
    # next message, whichever comes first.
    postponed_until: datetime | None = None
    # Marked important by an agent of the chat (actions/important.py): a star for every
    # agent in it, and the activity's priority High when it is written.
    important: bool = False
    # Read receipts (actions/reads.py): the last seq the visitor, and any agent, has read.
    visitor_read_seq: int = 0
    agent_read_seq: int = 0

    @property
    def is_open(self) -> bool:
        return self.state is not ConversationState.ENDED

    def active_agent_ids(self) -> list[str]:
        """Agents taking part right now, in the order they joined."""
        return [p.id for p in self.participants if p.kind == "agent" and p.active]

    def has_agent(self, agent_id: str) -> bool:
        return agent_id in self.active_agent_ids()


@dataclass(frozen=True)
class Message:
    conversation_id: str
    seq: int
    client_id: str
    sender_kind: SenderKind
    sender_id: str
    sender_name: str
    text: str
    sent_at: datetime
    # A file sent with the message (the text is its name): {"id","name","type","size"};
    # the bytes are in the live state (`attachment`), until the activity's notes hold them.
    attachment: dict[str, Any] | None = None


@dataclass(frozen=True)
class HistoryEntry:
    """An earlier chat of the same visitor, as the agent sees it."""

    conversation_id: str
    started_at: datetime
    ended_at: datetime | None
    agent: str
    message_count: int


@dataclass
class VisitorPresence:
    """A browser on a page carrying a widget (chatting or not)."""

    visitor_id: str
    widget_id: str
    first_seen: datetime
    last_seen: datetime
    name: str = "Visitor"
    page: dict[str, str] = field(default_factory=dict)
    ip: str = ""
    connections: int = 0  # open websockets (tabs); not stored
    conversation_id: str | None = None  # the open chat, if any

    @property
    def connected(self) -> bool:
        return self.connections > 0


@dataclass
class AgentPresence:
    agent_id: str
    status: AgentStatus = AgentStatus.AVAILABLE
    connections: int = 0  # open console websockets; not stored
    # Since when the agent waits for work: routing offers the longest idle first
    # (actions/queues.py); None (never offered a chat) comes before any time.
    idle_since: datetime | None = None

    @property
    def online(self) -> bool:
        return self.connections > 0
