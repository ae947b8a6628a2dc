"""Read receipts on web chats (docs/protocol.md, "Read receipts").

The console sends `message.read {conversation_id, seq}` while the agent has the chat open
and the page is visible; the widget sends `message.read {seq}` while its panel is open and
visible. Each side's mark only moves forward: a seq at or below the stored one (stale, a
repeat, a second tab) is ignored without an event, and one beyond the chat's last message
is refused, so a client can cost at most one event per message it was sent. The other side
gets `message.read {conversation_id, seq}` and shows "Seen" under its last own message up
to that seq. A visitor's mark is always their connection's own chat: there is no way for
it to name another (an agent's other chats included). The marks are stored with the
conversation (`visitor_read_seq`, `agent_read_seq`): the console reads `visitor_read_seq`
from the chat after a reload. A messaging channel's chats have the platform's own
receipts instead (actions/channels.py), so marks on them are ignored.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from connector.chat import events
from connector.chat.actions.conversations import agent_conversation, find_conversation
from connector.chat.errors import ChatInvalid, ChatNotFound
from connector.chat.model import Conversation, ConversationKind
from connector.chat.routing import agent_channel, chat_channel
from connector.chat.sessions import AgentSession, VisitorSession

if TYPE_CHECKING:
    from connector.chat.engine import ChatEngine

__all__ = ["do_agent_read", "do_visitor_read"]


def do_agent_read(
    engine: ChatEngine, session: AgentSession, *, conversation_id: str, seq: int
) -> None:
    """The agent has read the chat up to `seq`: its visitor gets `message.read`.
    Raises ChatNotFound for a chat the agent is not in, ChatInvalid past its last message."""
    with engine.changing():
        conversation = agent_conversation(engine, session.agent_id, conversation_id)
        if not _moves(engine, conversation, seq, conversation.agent_read_seq):
            return
        conversation.agent_read_seq = seq
        engine.state.save_conversation(conversation)
        _publish(engine, conversation, seq, {chat_channel(conversation.conversation_id)})


def do_visitor_read(
    engine: ChatEngine, session: VisitorSession, *, seq: int, conversation_id: str | None = None
) -> None:
    """The visitor has read their chat up to `seq`: its agents get `message.read`.
    Raises ChatNotFound without a chat on this connection or for another chat's id."""
    with engine.changing():
        own = session.conversation_id
        conversation = find_conversation(engine, own) if own else None
        if conversation is None or conversation_id not in (None, own):
            raise ChatNotFound("There is no chat on this connection.")
        if not _moves(engine, conversation, seq, conversation.visitor_read_seq):
            return
        conversation.visitor_read_seq = seq
        engine.state.save_conversation(conversation)
        agents = {agent_channel(a) for a in conversation.active_agent_ids()}
        _publish(engine, conversation, seq, agents)


def _moves(engine: ChatEngine, conversation: Conversation, seq: int, mark: int) -> bool:
    """Whether `seq` moves the mark forward on a web chat that is open (lock held)."""
    if (
        conversation.kind is not ConversationKind.VISITOR
        or conversation.channel is not None
        or not conversation.is_open
        or seq <= mark
    ):
        return False
    if seq > conversation.last_seq:
        # On Redis another process may have stored newer messages than this working copy.
        stored = engine.state.conversation(conversation.conversation_id)
        if stored is None or seq > stored.last_seq:
            raise ChatInvalid("There is no such message.")
        conversation.last_seq = stored.last_seq
    return True


def _publish(engine: ChatEngine, conversation: Conversation, seq: int, to: set[str]) -> None:
    if to:
        engine.bus.publish(
            events.event(
                events.MESSAGE_READ, conversation_id=conversation.conversation_id, seq=seq
            ),
            to,
        )
