"""Marking a chat important (docs/agent-workspace.md, "Mark important").

Any agent in the chat sets or clears the mark; every agent in it then sees the star on
the chat's row and tab (`chat.updated` with `important`). It is stored with the
conversation, so it survives a restart and is shared across processes, and it is written
on the chat activity as the standard `prioritycode` High (2), Normal (1) otherwise
(connector/crm/chat_activity.py). An ended chat whose activity is not written yet (wrap-up,
the rating window) can still be marked; once it is written the mark is refused.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from connector.chat.actions.conversations import agent_conversation, publish_chat_updated
from connector.chat.errors import ChatEnded, ChatForbidden, ChatInvalid
from connector.chat.model import ConversationKind
from connector.chat.sessions import AgentSession

if TYPE_CHECKING:
    from connector.chat.engine import ChatEngine

__all__ = ["do_agent_mark_important"]


def do_agent_mark_important(
    engine: ChatEngine, session: AgentSession, *, conversation_id: str, important: bool
) -> None:
    """Set the chat's mark to `important`; the same state again publishes nothing.

    Raises ChatNotFound for a chat the agent is not in, ChatInvalid for a chat between
    agents (it has no activity), ChatEnded once its activity is written."""
    with engine.changing():
        profile = engine.directory.agent(session.agent_id)
        if profile is None:
            raise ChatForbidden("You no longer have an agent profile.")
        conversation = agent_conversation(engine, profile.agent_id, conversation_id)
        if conversation.kind is not ConversationKind.VISITOR:
            raise ChatInvalid("Only a chat with a customer can be marked important.")
        if conversation.finished:
            raise ChatEnded("This chat is already saved to CRM.")
        if conversation.important == important:
            return
        conversation.important = important
        engine.state.save_conversation(conversation)
        publish_chat_updated(engine, conversation, skip=set())
