"""Files sent in a chat, both ways (docs/agent-workspace.md, "Attachments").

A file arrives over HTTP (connector/web/attachments.py: a socket frame holds 16 KiB), is
checked by `connector.crm.attachments.check_file` against the widget design's limits,
kept in the live state, and announced as a message whose text is the file's name and
whose `attachment` is `{"id","name","type","size"}`: `message.created` reaches both sides
as any message does, and a resync or `hello.resume` brings it back. The bytes are read
only by the chat's visitor (with the chat's resume token) or its agents. When the chat's
activity is written each file becomes a note with its `documentbody` on it
(connector/crm/chat_activity.py).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from connector.channels.files import FILE_RULES
from connector.channels.model import ChannelType
from connector.chat.actions.agents import agent_profile
from connector.chat.actions.channels import check_channel_reply
from connector.chat.actions.conversations import (
    agent_conversation,
    append_message,
    find_conversation,
    publish_message,
)
from connector.chat.errors import ChatEnded, ChatInvalid, ChatNotFound
from connector.chat.model import (
    Conversation,
    ConversationKind,
    ConversationState,
    Message,
    SenderKind,
)
from connector.chat.state import DuplicateMessage
from connector.chat.tokens import InvalidChatToken
from connector.crm.attachments import (
    MAX_ATTACHMENTS_PER_CHAT,
    AttachmentRefused,
    check_file,
)

if TYPE_CHECKING:
    from connector.chat.engine import ChatEngine

__all__ = [
    "FileIn",
    "StoredFile",
    "access_agent_file",
    "access_linked_file",
    "access_visitor_file",
    "chat_files",
    "do_agent_file",
    "do_visitor_file",
    "visitor_chat",
]


@dataclass(frozen=True)
class FileIn:
    """A file as the browser sent it."""

    name: str
    declared_type: str
    data: bytes
    client_id: str


@dataclass(frozen=True)
class StoredFile:
    name: str
    type: str
    data: bytes


def visitor_chat(engine: ChatEngine, *, widget_id: str, visitor_id: str, token: str) -> str:
    """The conversation id `token` names for this visitor and widget; ChatNotFound else."""
    try:
        conversation_id = engine.tokens.verify(token, visitor_id)
    except InvalidChatToken:
        raise ChatNotFound("There is no such chat.") from None
    with engine.reading():
        conversation = find_conversation(engine, conversation_id)
        if (
            conversation is None
            or conversation.kind is not ConversationKind.VISITOR
            or conversation.visitor_id != visitor_id
            or conversation.widget_id != widget_id
        ):
            raise ChatNotFound("There is no such chat.")
    return conversation_id


def _store(
    engine: ChatEngine,
    conversation: Conversation,
    file: FileIn,
    *,
    kind: SenderKind,
    sender_id: str,
    sender_name: str,
) -> tuple[Message, bool]:
    """Check, keep and announce one file (lock held); true when new: a resent client_id
    answers the message already stored."""
    existing = engine.state.message_by_client_id(conversation.conversation_id, file.client_id)
    if existing is not None:
        return existing, False
    if not conversation.is_open:
        raise ChatEnded("This chat has ended.")
    enabled, max_kb, types = _file_rules(engine, conversation)
    try:
        name, content_type = check_file(
            file.name, file.declared_type, file.data, enabled=enabled, max_kb=max_kb, types=types
        )
    except AttachmentRefused as error:
        raise ChatInvalid(str(error)) from None
    if len(chat_files(engine, conversation)) >= MAX_ATTACHMENTS_PER_CHAT:
        raise ChatInvalid(f"A chat takes at most {MAX_ATTACHMENTS_PER_CHAT} files.")
    attachment_id = str(uuid.uuid4())
    engine.state.save_attachment(conversation.conversation_id, attachment_id, file.data)
    attachment = {"id": attachment_id, "name": name, "type": content_type, "size": len(file.data)}
    try:
        message = append_message(
            engine,
            conversation,
            kind=kind,
            sender_id=sender_id,
            sender_name=sender_name,
            text=name,
            client_id=file.client_id,
            attachment=attachment,
        )
    except DuplicateMessage:  # the same upload, raced by a retry
        found = engine.state.message_by_client_id(conversation.conversation_id, file.client_id)
        if found is None:
            raise
        return found, False
    publish_message(engine, conversation, message)
    return message, True


def _file_rules(
    engine: ChatEngine, conversation: Conversation
) -> tuple[bool, int, tuple[str, ...]]:
    """Whether the chat takes files, the largest, and their extensions: the widget
    design's for a web chat, the platform's for a channel chat (what it takes from a
    business, `connector.channels.files`)."""
    if conversation.channel:
        rules = FILE_RULES[ChannelType(conversation.channel["type"])]
        return True, rules.max_kb, rules.types
    widget = engine.directory.widget(conversation.widget_id or "")
    if widget is None:
        raise ChatNotFound("There is no such chat.")
    design = widget.design.attachments
    return design.enabled, design.max_kb, design.types


def do_visitor_file(engine: ChatEngine, *, conversation_id: str, file: FileIn) -> dict[str, Any]:
    """The visitor sends a file (the caller checked their token: `visitor_chat`)."""
    with engine.changing():
        conversation = find_conversation(engine, conversation_id)
        if conversation is None:
            raise ChatNotFound("There is no such chat.")
        message, new = _store(
            engine,
            conversation,
            file,
            kind=SenderKind.VISITOR,
            sender_id=conversation.visitor_id or "",
            sender_name=conversation.visitor_name,
        )
        if new:
            conversation.last_visitor_message_at = message.sent_at
            if conversation.waiting_since is None:
                conversation.waiting_since = message.sent_at
        return {"seq": message.seq, "attachment": message.attachment}


def do_agent_file(
    engine: ChatEngine, *, agent_id: str, conversation_id: str, file: FileIn
) -> dict[str, Any]:
    """An agent of the chat sends a file."""
    with engine.changing():
        profile = agent_profile(engine, agent_id)
        conversation = agent_conversation(engine, profile.agent_id, conversation_id)
        if conversation.kind is not ConversationKind.VISITOR:
            raise ChatInvalid("Files go only to the customer.")
        if conversation.channel:
            # Under the platform's reply rule, as a text; the bridge sends it (by link).
            if conversation.state is not ConversationState.ACTIVE:
                raise ChatInvalid("Accept the chat first.")
            check_channel_reply(engine, conversation)
        message, _ = _store(
            engine,
            conversation,
            file,
            kind=SenderKind.AGENT,
            sender_id=profile.agent_id,
            sender_name=profile.name,
        )
        conversation.waiting_since = None
        return {"seq": message.seq, "attachment": message.attachment}


def chat_files(engine: ChatEngine, conversation: Conversation) -> list[dict[str, Any]]:
    """The chat's files as its messages announce them, with the sender's name."""
    return [
        dict(m.attachment, sender=m.sender_name)
        for m in engine.state.messages(conversation.conversation_id)
        if m.attachment
    ]


def _read(engine: ChatEngine, conversation: Conversation, attachment_id: str) -> StoredFile:
    for item in chat_files(engine, conversation):
        if item["id"] == attachment_id:
            data = engine.state.attachment_data(conversation.conversation_id, attachment_id)
            if data is not None:
                return StoredFile(name=item["name"], type=item["type"], data=data)
    raise ChatNotFound("There is no such file.")


def access_visitor_file(
    engine: ChatEngine, *, conversation_id: str, attachment_id: str
) -> StoredFile:
    """A file of the visitor's chat (the caller checked their token: `visitor_chat`)."""
    with engine.reading():
        conversation = find_conversation(engine, conversation_id)
        if conversation is None:
            raise ChatNotFound("There is no such file.")
        return _read(engine, conversation, attachment_id)


def access_agent_file(
    engine: ChatEngine, *, agent_id: str, conversation_id: str, attachment_id: str
) -> StoredFile:
    """A file of a chat the agent takes part in; ChatNotFound otherwise."""
    with engine.reading():
        conversation = agent_conversation(engine, agent_id, conversation_id)
        return _read(engine, conversation, attachment_id)


def access_linked_file(
    engine: ChatEngine, *, conversation_id: str, attachment_id: str
) -> StoredFile:
    """An agent's file of a channel chat, for the platform that fetches it by the signed
    link the bridge sent (`connector.channels.files.FileLinks`); ChatNotFound otherwise."""
    with engine.reading():
        conversation = find_conversation(engine, conversation_id)
        if conversation is None or not conversation.channel:
            raise ChatNotFound("There is no such file.")
        return _read(engine, conversation, attachment_id)
