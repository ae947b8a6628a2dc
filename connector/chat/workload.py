"""Which chats wait, and which chats each agent is in or rung for: what routing and the
sign-in snapshot read instead of every open conversation.

Routing runs on every chat started, accepted or ended and every sign-in; scanning all
open conversations each time made a chat's set-up cost grow with the chats open
(docs/performance.md). `Workload` holds hints: the ids of chats that may wait, and per
agent the chats they may be in. Every path that makes a chat wait, adds an agent or rings
one notes the chat (`note`); a read checks each hint against the conversation as it is
now and drops the stale ones, so a hint kept too long costs nothing but its check. Once a
second (the engine's sweep) and after a reload from another process everything is filed
again from the working copy (`rebuild`): a path that forgot to note a chat delays it by
at most that second instead of losing it.

Not thread-safe: the engine lock is held around every call.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from connector.chat.model import Conversation, ConversationKind, ConversationState

__all__ = ["Workload"]


class Workload:
    """Hints: the chats that may wait, and per agent the chats they may be in."""

    def __init__(self) -> None:
        self._waiting: set[str] = set()
        self._by_agent: dict[str, set[str]] = {}

    def note(self, conversation: Conversation) -> None:
        """The chat changed: file it under what it is now (waiting, its agents, its ring)."""
        conversation_id = conversation.conversation_id
        if _waits(conversation):
            self._waiting.add(conversation_id)
        for agent_id in _agents_of(conversation):
            self._by_agent.setdefault(agent_id, set()).add(conversation_id)

    def rebuild(self, conversations: Iterable[Conversation]) -> None:
        """File every open chat again (the sweep, a reload)."""
        self._waiting.clear()
        self._by_agent.clear()
        for conversation in conversations:
            if conversation.is_open or conversation.wrapup_until is not None:
                self.note(conversation)

    def waiting(self, conversations: Mapping[str, Conversation]) -> list[Conversation]:
        """The visitor chats waiting for an agent, oldest first (the queue's order)."""
        found = []
        for conversation_id in list(self._waiting):
            conversation = conversations.get(conversation_id)
            if conversation is None or not _waits(conversation):
                self._waiting.discard(conversation_id)
                continue
            found.append(conversation)
        found.sort(key=lambda c: (c.started_at, c.conversation_id))
        return found

    def chats_of(
        self, agent_id: str, conversations: Mapping[str, Conversation]
    ) -> list[Conversation]:
        """The chats the agent takes part in (open, or ended and in their wrap-up) or that
        ring for them, oldest first."""
        hints = self._by_agent.get(agent_id)
        if not hints:
            return []
        found = []
        for conversation_id in list(hints):
            conversation = conversations.get(conversation_id)
            if conversation is None or agent_id not in _agents_of(conversation):
                hints.discard(conversation_id)
                continue
            found.append(conversation)
        if not hints:
            del self._by_agent[agent_id]
        found.sort(key=lambda c: (c.started_at, c.conversation_id))
        return found


def _waits(conversation: Conversation) -> bool:
    return (
        conversation.kind is ConversationKind.VISITOR
        and conversation.state is ConversationState.WAITING
    )


def _agents_of(conversation: Conversation) -> set[str]:
    """The agents a chat concerns now: those in it and the one it rings for; an ended chat
    concerns its agents only while in its wrap-up (actions/finishing.py)."""
    if not conversation.is_open and conversation.wrapup_until is None:
        return set()
    agents = set(conversation.active_agent_ids())
    if conversation.ringing_agent_id is not None:
        agents.add(conversation.ringing_agent_id)
    return agents
