"""What an agent does with a chat offered to them, besides accepting it: reject it.

Rejecting declines for this agent only: the chat rings for the next agent who may take it
(actions/queues.py), and is never offered to this agent again while it waits (`may_take` reads
`Conversation.declined_agent_ids`, so the snapshot, a status change back to Available,
accept and resync all leave it out). The visitor is not told: they still wait for whoever
accepts, and the widget's waiting time limit (the ticket fallback) still applies.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from connector.chat import events
from connector.chat.actions.agents import agent_profile
from connector.chat.actions.conversations import may_take
from connector.chat.actions.queues import route_waiting
from connector.chat.errors import ChatConflict, ChatEnded, ChatNotFound
from connector.chat.model import ConversationKind, ConversationState
from connector.chat.routing import agent_channel
from connector.chat.sessions import AgentSession

if TYPE_CHECKING:
    from connector.chat.engine import ChatEngine

__all__ = ["do_agent_reject"]


def do_agent_reject(engine: ChatEngine, session: AgentSession, *, conversation_id: str) -> None:
    """Decline a waiting chat offered to this agent; their consoles get `chat.withdrawn`.

    Raises ChatNotFound for a chat that is not offered to them (or was rejected already),
    ChatEnded when the visitor has left it, ChatConflict once someone accepted it.
    """
    with engine.changing():
        profile = agent_profile(engine, session.agent_id)
        conversation = engine.conversations.get(conversation_id)
        if (
            conversation is None
            or conversation.kind is not ConversationKind.VISITOR
            or not may_take(engine, profile, conversation)
        ):
            raise ChatNotFound("There is no such chat.")
        if conversation.state is ConversationState.ENDED:
            raise ChatEnded("The visitor has ended this chat.")
        if conversation.state is not ConversationState.WAITING:
            raise ChatConflict("Another agent has already accepted this chat.")
        conversation.declined_agent_ids.append(profile.agent_id)
        if conversation.ringing_agent_id == profile.agent_id:
            conversation.ringing_agent_id = None
            conversation.ring_started_at = None
        engine.state.save_conversation(conversation)
        engine.bus.publish(
            events.event(events.CHAT_WITHDRAWN, conversation_id=conversation_id),
            {agent_channel(profile.agent_id)},
        )
        route_waiting(engine)
