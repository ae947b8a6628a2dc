"""Ask for assistance (consult): a private thread between a visitor chat's agent and
another agent, beside the chat (docs/agent-workspace.md, "Consult").

A consult is a conversation of its own, of kind AGENT, whose `consult_of` names the
visitor chat. Its messages are published only to its two agents (`conversation_channels`
adds a visitor side to visitor chats only), so nothing said in it can reach the
customer: not live, not in a resync (its `seq` are its own), not in the transcript.
The visitor chat lists its consults in `consult_ids`; when the visitor chat ends its open
consults end with it, and when its activity is written each consult becomes a note
(annotation) on the activity, an internal note (connector/crm/chat_activity.py).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from connector.chat import events
from connector.chat.actions.agents import agent_profile
from connector.chat.actions.conversations import (
    agent_conversation,
    agent_presence,
    chat_of,
    find_conversation,
    open_agent_chat,
)
from connector.chat.errors import ChatEnded, ChatInvalid, ChatNotFound, ChatUnavailable
from connector.chat.model import (
    Conversation,
    ConversationKind,
    ConversationState,
)
from connector.chat.routing import conversation_channels
from connector.chat.sessions import AgentSession

if TYPE_CHECKING:
    from connector.chat.engine import ChatEngine

__all__ = ["MAX_CONSULTS_PER_CHAT", "do_consult_start", "open_consults"]

# Each consult is one note on the activity; a bound keeps a chat's write small.
MAX_CONSULTS_PER_CHAT = 10


def open_consults(engine: ChatEngine, conversation: Conversation) -> list[Conversation]:
    """The visitor chat's consults still open (lock held)."""
    found = (engine.conversations.get(i) for i in conversation.consult_ids)
    return [c for c in found if c is not None and c.is_open]


def _consulted_chat(
    engine: ChatEngine, session: AgentSession, me: str, conversation_id: str, agent_id: str
) -> Conversation:
    """The chat to consult about: one the sender is in, or, for a supervisor, any chat
    whose agent they write to (a supervisor's private message to the agent)."""
    chat = find_conversation(engine, conversation_id)
    if session.supervisor and chat is not None and chat.has_agent(agent_id):
        return chat
    return agent_conversation(engine, me, conversation_id)


def do_consult_start(
    engine: ChatEngine, session: AgentSession, *, conversation_id: str, agent_id: str
) -> None:
    """Open a consult about the visitor chat `conversation_id` (the sender takes part in
    it) with another online agent; both get `chat.accepted {chat}` with `consult_of`.
    An open consult of the same chat with the same agent is answered again, not doubled.
    """
    with engine.changing():
        profile = agent_profile(engine, session.agent_id)
        chat = _consulted_chat(engine, session, profile.agent_id, conversation_id, agent_id)
        if chat.kind is not ConversationKind.VISITOR:
            raise ChatInvalid("Ask for assistance from a chat with a customer.")
        if not chat.is_open:
            raise ChatEnded("This chat has ended.")
        if chat.state is not ConversationState.ACTIVE:
            raise ChatInvalid("Accept the chat first.")
        target = engine.directory.agent(agent_id)
        if target is None:
            raise ChatNotFound("There is no such agent.")
        if target.agent_id == profile.agent_id:
            raise ChatInvalid("Pick another agent to ask.")
        if not agent_presence(engine, target.agent_id).online:
            raise ChatUnavailable(f"{target.name} is not online.")
        for consult in open_consults(engine, chat):
            if consult.has_agent(profile.agent_id) and consult.has_agent(target.agent_id):
                engine.hub.send_to(
                    session.subscriber,
                    events.event(events.CHAT_ACCEPTED, chat=chat_of(engine, consult)),
                )
                return
        if len(chat.consult_ids) >= MAX_CONSULTS_PER_CHAT:
            raise ChatInvalid(f"A chat may have at most {MAX_CONSULTS_PER_CHAT} consults.")
        consult = open_agent_chat(engine, profile, target, consult_of=chat.conversation_id)
        chat.consult_ids.append(consult.conversation_id)
        engine.state.save_conversation(chat)
        engine.bus.publish(
            events.event(events.CHAT_ACCEPTED, chat=chat_of(engine, consult)),
            conversation_channels(consult),
        )
