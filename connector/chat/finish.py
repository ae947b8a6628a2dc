"""A finished visitor chat on its way to Dataverse: the outbox item.

When a visitor chat ends, the rating may still come, so the write waits (see
`connector.chat.actions`, "Finishing a chat"). Then ONE outbox item of kind
`CHAT_ACTIVITY_KIND`, keyed by the conversation id, carries `FinishedChat.to_dict()`; the
CRM layer's handler writes it (at most 2 requests, idempotent on the conversation id).
Nothing on this path reads Dataverse: names come from the cached Directory.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence
from typing import Any

from connector.chat.model import Conversation, Message
from connector.chat.ports import DirectoryLike
from connector.crm.chat_activity import CHAT_ACTIVITY_KIND, FinishedChat
from connector.crm.regarding import Regarding

__all__ = ["CHAT_ACTIVITY_KIND", "finished_chat", "finished_chat_payload", "transcript_messages"]


def transcript_messages(
    messages: Sequence[Message], receipts: Mapping[str, str] | None = None
) -> list[dict[str, Any]]:
    """The messages in the protocol's shape `format_transcript` reads; `receipts` (a
    channel chat's delivery states by seq) adds each agent message's `state`."""
    shaped: list[dict[str, Any]] = []
    for m in messages:
        item: dict[str, Any] = {
            "seq": m.seq,
            "sender": {"kind": m.sender_kind.value, "name": m.sender_name},
            "text": m.text,
            "sent_at": m.sent_at.isoformat(),
        }
        if receipts and str(m.seq) in receipts:
            item["state"] = receipts[str(m.seq)]
        shaped.append(item)
    return shaped


def finished_chat(
    conversation: Conversation,
    messages: Sequence[Message],
    directory: DirectoryLike,
    consults: Sequence[tuple[Conversation, Sequence[Message]]] = (),
    files: Sequence[tuple[Message, bytes]] = (),
) -> FinishedChat:
    """The activity-to-be of an ended visitor chat; `consults`: its consult threads with
    their messages, each to become an internal note on the activity; `files`: the
    messages that carried a file, with its bytes, each to become a note with the file."""
    assert conversation.ended_at is not None
    widget = directory.widget(conversation.widget_id) if conversation.widget_id else None
    topics = directory.topics()
    labels = directory.labels()
    if conversation.topic_id is not None:
        chosen = topics.get(conversation.topic_id)
        topic_names = [chosen.name] if chosen is not None else []
    else:
        topic_names = (
            sorted(topics[t].name for t in widget.topic_ids if t in topics)
            if widget is not None
            else []
        )
    owner = directory.agent(conversation.owner_agent_id) if conversation.owner_agent_id else None
    # Reports count a chat under its chosen topic, else under its widget's only topic.
    topic_id = conversation.topic_id
    if topic_id is None and widget is not None and len(widget.topic_ids) == 1:
        topic_id = next(iter(widget.topic_ids))
    return FinishedChat(
        conversation_id=conversation.conversation_id,
        widget_id=conversation.widget_id,
        topic_names=topic_names,
        visitor_name=conversation.visitor_name,
        visitor_fields=dict(conversation.visitor_fields),
        visitor_id=conversation.visitor_id or "",
        page=conversation.page,
        ip=conversation.ip,
        started_at=conversation.started_at,
        accepted_at=conversation.accepted_at,
        ended_at=conversation.ended_at,
        owner_user_id=owner.user_id if owner is not None else None,
        participants=[
            {"kind": p.kind, "id": p.id, "name": p.name} for p in conversation.participants
        ],
        rating=conversation.rating,
        transcript=transcript_messages(messages, (conversation.channel or {}).get("receipts")),
        regarding=Regarding.from_dict(conversation.regarding) if conversation.regarding else None,
        context=dict(conversation.context),
        labels=sorted(labels[i].name for i in conversation.labels if i in labels),
        identity=dict(conversation.identity) if conversation.identity else None,
        contact=dict(conversation.contact) if conversation.contact else None,
        topic_id=topic_id if topic_id in topics else None,
        agent_id=owner.agent_id if owner is not None else None,
        consent=dict(conversation.consent) if conversation.consent else None,
        disposition=conversation.disposition,
        important=conversation.important,
        consults=[
            {
                "subject": "Consult (internal): "
                + " and ".join(p.name for p in consult.participants if p.kind == "agent"),
                "transcript": transcript_messages(consult_messages),
            }
            for consult, consult_messages in consults
        ],
        files=[
            {
                "name": str(message.attachment["name"]),
                "type": str(message.attachment["type"]),
                "sender": message.sender_name,
                "documentbody": base64.b64encode(data).decode("ascii"),
            }
            for message, data in files
            if message.attachment
        ],
    )


def finished_chat_payload(
    conversation: Conversation,
    messages: Sequence[Message],
    directory: DirectoryLike,
    consults: Sequence[tuple[Conversation, Sequence[Message]]] = (),
    files: Sequence[tuple[Message, bytes]] = (),
) -> dict[str, Any]:
    """The outbox payload for an ended visitor chat (JSON-ready)."""
    return finished_chat(conversation, messages, directory, consults, files).to_dict()
