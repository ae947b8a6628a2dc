"""The wire shapes of docs/protocol.md, built from the model (pure functions).

Text goes out exactly as stored; clients render it with `textContent`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from connector.channels.files import FILE_RULES
from connector.channels.model import ChannelType
from connector.chat.context import displayable
from connector.chat.model import (
    AgentPresence,
    Conversation,
    HistoryEntry,
    Message,
    VisitorPresence,
)
from connector.chat.ports import AgentLike, LabelLike, TopicLike, WidgetLike

__all__ = [
    "agent_view",
    "chat_view",
    "iso",
    "label_view",
    "message_view",
    "visitor_chat_view",
    "visitor_view",
]


def iso(value: datetime | None) -> str | None:
    """ISO 8601 UTC with a Z, or None."""
    if value is None:
        return None
    return value.isoformat().replace("+00:00", "Z")


def _file_limits(conversation: Conversation, widget: Any) -> dict[str, Any] | None:
    """The files the chat takes, so the console checks a file before it uploads it: the
    widget design's, or on a channel chat the platform's (`connector.channels.files`)."""
    if conversation.kind.value != "visitor":
        return None
    if conversation.channel:
        rules = FILE_RULES[ChannelType(conversation.channel["type"])]
        return {"enabled": True, "max_kb": rules.max_kb, "types": list(rules.types)}
    if widget is None:
        return None
    design = widget.design.attachments
    return {"enabled": design.enabled, "max_kb": design.max_kb, "types": list(design.types)}


def message_view(message: Message) -> dict[str, Any]:
    """A `message.created` frame."""
    return {
        "type": "message.created",
        "conversation_id": message.conversation_id,
        "seq": message.seq,
        "client_id": message.client_id,
        "sender": {"kind": message.sender_kind.value, "name": message.sender_name},
        "text": message.text,
        "sent_at": iso(message.sent_at),
        **({"attachment": message.attachment} if message.attachment else {}),
    }


def _message_item(message: Message) -> dict[str, Any]:
    item = message_view(message)
    del item["type"]
    return item


def visitor_view(presence: VisitorPresence, *, widget_name: str = "") -> dict[str, Any]:
    return {
        "visitor_id": presence.visitor_id,
        "name": presence.name,
        "page": presence.page,
        "ip": presence.ip,
        "widget_id": presence.widget_id,
        "widget_name": widget_name,
        "first_seen": iso(presence.first_seen),
        "connected": presence.connected,
        "chatting": presence.conversation_id is not None,
    }


def agent_view(profile: AgentLike, presence: AgentPresence) -> dict[str, Any]:
    return {
        "agent_id": profile.agent_id,
        "name": profile.name,
        "status": presence.status.value,
        "online": presence.online,
        # Whom a visitor chat may be handed to: only agents of one of its topics.
        "topic_ids": sorted(profile.topic_ids),
    }


def label_view(label: LabelLike) -> dict[str, Any]:
    return {"id": label.label_id, "name": label.name, "color": label.color}


def chat_view(
    conversation: Conversation,
    *,
    widget: WidgetLike | None,
    topics: Mapping[str, TopicLike],
    labels: Mapping[str, LabelLike] | None = None,
    messages: Sequence[Message],
    history: Sequence[HistoryEntry],
    visitor: VisitorPresence | None,
    consult_of: dict[str, str] | None = None,
) -> dict[str, Any]:
    """The `chat` object agents receive (snapshot, offered, accepted, updated);
    `consult_of` ({"conversation_id","visitor_name"}) names the visitor chat a consult is
    about."""
    visitor_part: dict[str, Any] | None = None
    if conversation.visitor_id is not None:
        visitor_part = {
            "visitor_id": conversation.visitor_id,
            "name": conversation.visitor_name,
            "fields": conversation.visitor_fields,
            # The design's label of each field ("First name" for `firstname`), to show.
            "field_labels": {
                f.name: f.label for f in (widget.design.fields if widget is not None else ())
            },
            # Only what the page marked displayable (all of it is stored on the activity).
            "context": {item["name"]: item["value"] for item in displayable(conversation.context)},
            "page": visitor.page if visitor is not None else {"url": conversation.page},
            "ip": conversation.ip,
            "connected": visitor is not None and visitor.connected,
        }
    if conversation.topic_id is not None:
        topic_ids = [conversation.topic_id]
    else:
        topic_ids = sorted(widget.topic_ids) if widget is not None else []
    known_labels = labels or {}
    return {
        "conversation_id": conversation.conversation_id,
        "kind": conversation.kind.value,
        "state": conversation.state.value,
        "widget": {"id": widget.widget_id, "name": widget.name} if widget is not None else None,
        "channel": conversation.channel,
        "consult_of": consult_of,
        # The widget's file limits, so the console checks a file before it uploads it.
        "attachments": _file_limits(conversation, widget),
        "topics": [
            {"id": t.topic_id, "name": t.name, "color": t.color, "dispositions": t.dispositions}
            for t in (topics.get(topic_id) for topic_id in topic_ids)
            if t is not None
        ],
        "visitor": visitor_part,
        "participants": [
            {"kind": p.kind, "id": p.id, "name": p.name}
            for p in conversation.participants
            if p.active
        ],
        "started_at": iso(conversation.started_at),
        "accepted_at": iso(conversation.accepted_at),
        "ended_at": iso(conversation.ended_at),
        "last_visitor_message_at": iso(conversation.last_visitor_message_at),
        "waiting_since": iso(conversation.waiting_since),
        # Wrap-up: the disposition is still to choose, until then (actions/finishing.py).
        "wrapup_until": iso(conversation.wrapup_until),
        "disposition": conversation.disposition,
        "postponed_until": iso(conversation.postponed_until),
        "important": conversation.important,
        "visitor_read_seq": conversation.visitor_read_seq,  # "Seen" (actions/reads.py)
        "regarding": conversation.regarding,
        "contact": conversation.contact,
        "rating": conversation.rating,
        "identity": conversation.identity,
        "context": displayable(conversation.context),
        "labels": [
            label_view(label)
            for label in (known_labels.get(label_id) for label_id in conversation.labels)
            if label is not None
        ],
        "messages": [_message_item(m) for m in messages],
        "history": [
            {
                "conversation_id": h.conversation_id,
                "started_at": iso(h.started_at),
                "ended_at": iso(h.ended_at),
                "agent": h.agent,
                "message_count": h.message_count,
            }
            for h in history
        ],
    }


def visitor_chat_view(
    conversation: Conversation,
    *,
    agent: dict[str, Any] | None,
    messages: Sequence[Message],
) -> dict[str, Any]:
    """The `chat` object in `hello.ok` (what the visitor may know)."""
    return {
        "conversation_id": conversation.conversation_id,
        "state": conversation.state.value,
        "agent": agent,
        "rating": conversation.rating,
        "messages": [_message_item(m) for m in messages],
    }
