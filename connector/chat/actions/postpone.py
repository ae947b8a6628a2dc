"""Postponing a chat: its agent sets it aside until a chosen time or the customer's next
message, whichever comes first (docs/agent-workspace.md, "Postpone").

A postponed chat stays the agent's (they are still in it, its messages still reach them)
but leaves their Visitor chats for the Postponed list, and does not count against their
capacity meanwhile (actions/queues.py): setting it aside is how an agent who waits for the
customer makes room for the next one. It comes back (`postponed_until` cleared, the agents
get `chat.updated`) when the customer writes, when an agent of the chat writes in it, or
at its time, through the `postpone` timer (actions/due.py), which survives a restart: the
time is stored with the conversation and re-armed at start.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from connector.chat.actions.conversations import agent_conversation, publish_chat_updated
from connector.chat.actions.queues import route_waiting
from connector.chat.errors import ChatEnded, ChatForbidden, ChatInvalid
from connector.chat.model import Conversation, ConversationKind, ConversationState
from connector.chat.sessions import AgentSession
from connector.chat.timers import DueTimer

if TYPE_CHECKING:
    from connector.chat.engine import ChatEngine

__all__ = [
    "MAX_POSTPONE",
    "MIN_POSTPONE",
    "POSTPONE_TIMER",
    "bring_back",
    "do_agent_postpone",
    "forget_postpone",
    "postpone_due",
]

POSTPONE_TIMER = "postpone"
# Less than a minute is not setting a chat aside; more than a day outlives any chat that is
# still open (a web visitor's chat closes once they have been gone a while).
MIN_POSTPONE = timedelta(minutes=1)
MAX_POSTPONE = timedelta(days=1)


def do_agent_postpone(
    engine: ChatEngine, session: AgentSession, *, conversation_id: str, until: datetime
) -> None:
    """Set an active visitor chat the agent is in aside until `until` (timezone-aware);
    postponing again moves the time. Its agents get `chat.updated` with `postponed_until`.

    Raises ChatInvalid for a time under MIN_POSTPONE or over MAX_POSTPONE from now, or a
    chat that is not an active visitor chat; ChatEnded once it has ended."""
    with engine.changing():
        profile = engine.directory.agent(session.agent_id)
        if profile is None:
            raise ChatForbidden("You no longer have an agent profile.")
        conversation = agent_conversation(engine, profile.agent_id, conversation_id)
        if not conversation.is_open:
            raise ChatEnded("This chat has ended.")
        if (
            conversation.kind is not ConversationKind.VISITOR
            or conversation.state is not ConversationState.ACTIVE
        ):
            raise ChatInvalid("Only an active chat with a customer can be postponed.")
        now = engine.clock()
        if until < now + MIN_POSTPONE:
            raise ChatInvalid("Postpone the chat to at least a minute from now.")
        if until > now + MAX_POSTPONE:
            raise ChatInvalid("A chat can be postponed by at most a day.")
        conversation.postponed_until = until
        engine.timers.set(POSTPONE_TIMER, conversation.conversation_id, until)
        engine.state.save_conversation(conversation)
        publish_chat_updated(engine, conversation, skip=set())
        route_waiting(engine)  # a place freed


def forget_postpone(engine: ChatEngine, conversation: Conversation) -> None:
    """The chat is postponed no more (lock held), with no event of its own: it ends or
    changes hands, and what the caller publishes says so. The caller saves it."""
    if conversation.postponed_until is not None:
        conversation.postponed_until = None
        engine.timers.cancel(POSTPONE_TIMER, conversation.conversation_id)


def bring_back(engine: ChatEngine, conversation: Conversation) -> None:
    """The postponed chat is the agent's again (lock held; stored, its agents get
    `chat.updated`); nothing when it was not postponed."""
    if conversation.postponed_until is None:
        return
    forget_postpone(engine, conversation)
    engine.state.save_conversation(conversation)
    publish_chat_updated(engine, conversation, skip=set())


def postpone_due(engine: ChatEngine, timer: DueTimer) -> None:
    """A postponed chat's time came (lock held): it comes back."""
    conversation = engine.conversations.get(timer.key)
    if (
        conversation is not None
        and conversation.is_open
        and conversation.postponed_until is not None
        and conversation.postponed_until <= engine.clock()
    ):
        bring_back(engine, conversation)
