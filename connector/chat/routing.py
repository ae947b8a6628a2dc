"""Who may see what, who is offered a chat, and who receives an event: pure functions.

- An agent sees a widget's visitors and chats only when one of the agent's topics is one
  of the widget's topics (`can_see`).
- A waiting chat rings for one agent at a time: of the online, Available agents who may
  take it and have free capacity, the longest idle (`ring_order`; actions/queues.py
  decides when), and a free place in each of its topics that limits chats per agent
  (`fits_topics`). A widget is available when at least one online, Available agent shares
  a topic (`agents_for_chat`, `widget_available`), whether or not their capacity is full:
  the chat then waits in its topic's queue.
- Events go to channels (`agent_channel`, `chat_channel`, `widget_channel`); which
  channels an event reaches is decided here, never in the socket code.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from connector.chat.model import AgentStatus, Conversation, ConversationKind

__all__ = [
    "AgentRoute",
    "agent_channel",
    "agents_for_chat",
    "can_see",
    "chat_channel",
    "fits_topics",
    "conversation_channels",
    "ring_order",
    "watcher_channels",
    "available_topics",
    "widget_available",
    "widget_channel",
]


@dataclass(frozen=True)
class AgentRoute:
    """What routing needs to know about one agent right now."""

    agent_id: str
    topic_ids: frozenset[str]
    status: AgentStatus
    online: bool


def can_see(agent_topic_ids: frozenset[str], widget_topic_ids: frozenset[str]) -> bool:
    """True when the agent shares at least one topic with the widget."""
    return not agent_topic_ids.isdisjoint(widget_topic_ids)


def agents_for_chat(widget_topic_ids: frozenset[str], agents: Iterable[AgentRoute]) -> list[str]:
    """Ids of the agents a waiting chat of this widget is offered to, in input order."""
    return [
        agent.agent_id
        for agent in agents
        if agent.online
        and agent.status is AgentStatus.AVAILABLE
        and can_see(agent.topic_ids, widget_topic_ids)
    ]


def ring_order(
    agents: Iterable[AgentRoute],
    *,
    loads: Mapping[str, int],
    capacities: Mapping[str, int],
    idle_since: Mapping[str, datetime | None],
) -> list[str]:
    """Ids of the online, Available agents with free capacity, longest idle first.

    Never offered (idle_since None) comes first; equal times go by agent id, so every
    process orders alike.
    """
    free = [
        agent
        for agent in agents
        if agent.online
        and agent.status is AgentStatus.AVAILABLE
        and loads.get(agent.agent_id, 0) < capacities.get(agent.agent_id, 0)
    ]
    free.sort(
        key=lambda agent: (
            idle_since.get(agent.agent_id) is not None,
            idle_since.get(agent.agent_id) or datetime.min.replace(tzinfo=UTC),
            agent.agent_id,
        )
    )
    return [agent.agent_id for agent in free]


def available_topics(agents: Iterable[AgentRoute]) -> frozenset[str]:
    """The topics some online, Available agent serves: a widget sharing one can chat.

    Computed once for all widgets (`refresh_availability`): asking every agent for every
    widget is widgets x agents under the engine's lock (0.8 s a sweep at 500 of each)."""
    return frozenset(
        topic_id
        for agent in agents
        if agent.online and agent.status is AgentStatus.AVAILABLE
        for topic_id in agent.topic_ids
    )


def fits_topics(
    agent_id: str,
    topic_ids: Iterable[str],
    *,
    topic_loads: Mapping[tuple[str, str], int],
    limits: Mapping[str, int],
) -> bool:
    """True when the agent has a free place in each of the chat's topics that limits its
    chats per agent (`limits`: topic id -> chats per agent; `topic_loads`: (agent id,
    topic id) -> the agent's chats of that topic now)."""
    return all(
        topic_loads.get((agent_id, topic_id), 0) < limits[topic_id]
        for topic_id in topic_ids
        if topic_id in limits
    )


def widget_available(
    enabled: bool, widget_topic_ids: frozenset[str], topics: frozenset[str]
) -> bool:
    """True when the widget is on and shares a topic with `available_topics`."""
    return enabled and not widget_topic_ids.isdisjoint(topics)


def agent_channel(agent_id: str) -> str:
    """Every console websocket of one agent."""
    return f"agent:{agent_id}"


def chat_channel(conversation_id: str) -> str:
    """The visitor's websockets (tabs) that started or resumed this chat."""
    return f"chat:{conversation_id}"


def widget_channel(widget_id: str) -> str:
    """Every visitor websocket on a page carrying this widget (for `availability`)."""
    return f"widget:{widget_id}"


def conversation_channels(conversation: Conversation, *, visitor: bool = True) -> set[str]:
    """The conversation's current agents, plus its visitor side when `visitor` is true."""
    channels = {agent_channel(agent_id) for agent_id in conversation.active_agent_ids()}
    if visitor and conversation.kind is ConversationKind.VISITOR:
        channels.add(chat_channel(conversation.conversation_id))
    return channels


def watcher_channels(widget_topic_ids: frozenset[str], agents: Iterable[AgentRoute]) -> set[str]:
    """Online agents who can see this widget's visitors and chats (whatever their status)."""
    return {
        agent_channel(agent.agent_id)
        for agent in agents
        if agent.online and can_see(agent.topic_ids, widget_topic_ids)
    }
