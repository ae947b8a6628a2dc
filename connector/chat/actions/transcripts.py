"""The visitor's own transcript, for download or mail (connector/web/transcripts.py).

Only the browser holding the chat's resume token reads it: the token is signed by the
service and names the conversation and the visitor id, and the chat must belong to that
visitor and to the widget the request names. A visitor id alone (readable by the page's
scripts and shown to agents) proves nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

from connector.chat.actions.conversations import find_conversation
from connector.chat.engine import ChatEngine
from connector.chat.errors import ChatNotFound
from connector.chat.finish import transcript_messages
from connector.chat.model import ConversationKind
from connector.chat.tokens import InvalidChatToken
from connector.crm.chat_activity import format_transcript

__all__ = ["VisitorTranscript", "access_visitor_transcript"]


@dataclass(frozen=True)
class VisitorTranscript:
    conversation_id: str
    widget_name: str
    text: str  # the readable transcript, one `[10:02:11] Ann: hello` line per message


def access_visitor_transcript(
    engine: ChatEngine, *, widget_id: str, visitor_id: str, token: str
) -> VisitorTranscript:
    """The transcript of the chat `token` was issued for; ChatNotFound for anything else."""
    try:
        conversation_id = engine.tokens.verify(token, visitor_id)
    except InvalidChatToken:
        raise ChatNotFound("There is no such chat.") from None
    with engine.lock:
        conversation = find_conversation(engine, conversation_id)
    if (
        conversation is None
        or conversation.kind is not ConversationKind.VISITOR
        or conversation.visitor_id != visitor_id
        or conversation.widget_id != widget_id
    ):
        raise ChatNotFound("There is no such chat.")
    messages = engine.state.messages(conversation_id)
    widget = engine.directory.widget(widget_id)
    return VisitorTranscript(
        conversation_id=conversation_id,
        widget_name=widget.name if widget is not None else "",
        text=format_transcript(transcript_messages(messages), started_at=conversation.started_at),
    )
