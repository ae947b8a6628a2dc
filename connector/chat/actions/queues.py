"""Routing waiting chats: the ring, capacity, the answer time limit and the queue.

- **Capacity**: an agent has at most `capacity` visitor chats at once (the agent record's
  `crmchat_capacity`, 3 when empty), and at most a topic's `max_per_agent` chats of that
  topic (`crmchat_maxperagent`, no limit of its own when empty; a chat counts in each of
  its routing topics). Their load is the open chats they take part in (not those they
  postponed), the chats in wrap-up of a topic that blocks capacity for it
  (`crmchat_blockwrapup`, yes when empty), plus the offers ringing for them now, so
  routing never promises more than they can take.
- **The ring**: a waiting chat rings for ONE agent at a time (`ringing_agent_id`), the
  longest idle of the online, Available agents who may take it and have free capacity
  (`routing.ring_order`). Idle since: the last offer to them, or the end of their last
  chat. Reject, a ring past the topic's answer time limit, the agent going Busy, Away or
  offline: the ring moves to the next agent (`chat.unoffered` to the one it left).
- **Answer time limit**: the topic's `crmchat_answersecs` (30 s when empty). An agent
  who lets an offer ring past it is put on `paused` (shown as "Paused — missed chat") and
  is offered nothing until they choose Available again.
- **The queue**: a chat nobody can take now waits, in the order chats started (a chat
  transferred to a queue keeps its start, so it goes before newer ones). `route_waiting`
  runs whenever capacity may have freed or the queue changed (a chat starts, is accepted,
  ends or is transferred; an agent connects, leaves or changes status; every sweep), so a
  freed place is offered within the same change.
- **The visitor** hears `chat.queued {position, estimated_wait_secs}` whenever either
  changes. Position: 1 + the chats of the same topics that started earlier and still
  wait. Estimate: position x the topic's mean handling time (accept to end, the last
  `HANDLE_SAMPLES` chats this process saw end) / the places of its online agents who are
  not Away; null until a chat of the topic has ended or while no such agent is online.

Everything routing needs is stored with the conversations and the agents' status and
idle time, so every process routes alike on Redis (each change holds the org lease).
What a visitor was last told (`engine.queue_told`) and the handling times are per process:
another process may repeat an unchanged `chat.queued`, never skip a change.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

from connector.chat import events
from connector.chat.actions.conversations import (
    agent_presence,
    agent_routes,
    append_system_line,
    chat_of,
    may_take,
    note_agent,
    publish_message,
    refresh_availability,
    routing_topics,
)
from connector.chat.errors import ChatForbidden, ChatInvalid, ChatNotFound
from connector.chat.model import (
    AgentStatus,
    Conversation,
    ConversationKind,
    ConversationState,
)
from connector.chat.routing import (
    AgentRoute,
    agent_channel,
    can_see,
    chat_channel,
    fits_topics,
    ring_order,
)
from connector.chat.sessions import AgentSession
from connector.crm.directory import DEFAULT_ANSWER_SECS

if TYPE_CHECKING:
    from connector.chat.engine import ChatEngine

__all__ = [
    "HANDLE_SAMPLES",
    "answer_secs",
    "blocks_in_wrapup",
    "do_agent_transfer_to_queue",
    "note_chat_ended",
    "pick_from_queue",
    "publish_waiting",
    "route_waiting",
    "run_ring_timeouts",
]

# Enough ended chats for a steady mean, few enough that it follows the day's pace.
HANDLE_SAMPLES = 50


def answer_secs(engine: ChatEngine, conversation: Conversation) -> int:
    """How long the chat rings for one agent: its topic's limit (the shortest of its
    widget's topics when the visitor chose none)."""
    topics = engine.directory.topics()
    limits = [topics[t].answer_secs for t in routing_topics(engine, conversation) if t in topics]
    return min(limits) if limits else DEFAULT_ANSWER_SECS


def _waiting(engine: ChatEngine) -> list[Conversation]:
    """The visitor chats waiting for an agent, oldest first (the queue's order)."""
    return engine.workload.waiting(engine.conversations)


@dataclass
class _Loads:
    """What the agents have now: chats in all, and chats per (agent, topic) of the topics
    that limit chats per agent (`limits`, topic id -> at most that many per agent)."""

    limits: dict[str, int]
    total: dict[str, int] = field(default_factory=dict)
    by_topic: dict[tuple[str, str], int] = field(default_factory=dict)

    def add(self, agent_id: str, topic_ids: frozenset[str], n: int = 1) -> None:
        self.total[agent_id] = self.total.get(agent_id, 0) + n
        for topic_id in topic_ids & self.limits.keys():
            key = (agent_id, topic_id)
            self.by_topic[key] = self.by_topic.get(key, 0) + n

    def fits(self, agent_id: str, topic_ids: frozenset[str]) -> bool:
        return fits_topics(agent_id, topic_ids, topic_loads=self.by_topic, limits=self.limits)


def blocks_in_wrapup(engine: ChatEngine, conversation: Conversation) -> bool:
    """True when the chat is in wrap-up and one of its topics keeps its agents' place for
    it (Omnichannel's "Block capacity for wrap up", on by default)."""
    if conversation.wrapup_until is None:
        return False
    topics = engine.directory.topics()
    return any(topics[t].block_wrapup for t in routing_topics(engine, conversation) if t in topics)


def _loads(engine: ChatEngine, agent_ids: Iterable[str]) -> _Loads:
    """Per agent of `agent_ids`: the open visitor chats they are in, those in a blocking
    wrap-up, plus the offers ringing for them now (read from the workload's hints, so the
    cost follows these agents' chats, not every chat open)."""
    limits = {
        topic_id: topic.max_per_agent
        for topic_id, topic in engine.directory.topics().items()
        if topic.max_per_agent is not None
    }
    loads = _Loads(limits)
    for agent_id in agent_ids:
        for c in engine.workload.chats_of(agent_id, engine.conversations):
            if c.kind is not ConversationKind.VISITOR:
                continue
            # Topics only matter when one limits chats per agent (the common case: none).
            topic_ids = routing_topics(engine, c) if limits else frozenset()
            if not c.is_open:
                if blocks_in_wrapup(engine, c) and agent_id in c.active_agent_ids():
                    loads.add(agent_id, topic_ids)
            elif c.state is ConversationState.WAITING:
                if c.ringing_agent_id == agent_id:
                    loads.add(agent_id, topic_ids)
            elif c.postponed_until is None and agent_id in c.active_agent_ids():
                loads.add(agent_id, topic_ids)  # a postponed chat is set aside to make room
    return loads


def _still_rings(
    engine: ChatEngine, conversation: Conversation, routes: dict[str, AgentRoute]
) -> bool:
    route = routes.get(conversation.ringing_agent_id or "")
    profile = engine.directory.agent(conversation.ringing_agent_id or "")
    return (
        route is not None
        and profile is not None
        and route.online
        and route.status is AgentStatus.AVAILABLE
        and may_take(engine, profile, conversation)
    )


def _stop_ring(engine: ChatEngine, conversation: Conversation) -> None:
    """The ring leaves its agent (lock held): their consoles drop the offer; the chat stays
    in their Waiting list when they may still take it."""
    agent_id = conversation.ringing_agent_id
    conversation.ringing_agent_id = None
    conversation.ring_started_at = None
    engine.state.save_conversation(conversation)
    if agent_id is not None:
        engine.bus.publish(
            events.event(events.CHAT_UNOFFERED, conversation_id=conversation.conversation_id),
            {agent_channel(agent_id)},
        )


def _ring(engine: ChatEngine, conversation: Conversation, agent_id: str, now: datetime) -> None:
    conversation.ringing_agent_id = agent_id
    conversation.ring_started_at = now
    engine.state.save_conversation(conversation)
    engine.workload.note(conversation)
    presence = agent_presence(engine, agent_id)
    presence.idle_since = now
    engine.state.save_agent_idle(agent_id, now)
    engine.bus.publish(
        events.event(events.CHAT_OFFERED, chat=chat_of(engine, conversation)),
        {agent_channel(agent_id)},
    )


def route_waiting(engine: ChatEngine) -> None:
    """Ring the waiting chats for the agents who can take them now, and tell the queued
    visitors where they stand (lock held). Idempotent: a chat already ringing for an
    agent who may still take it keeps ringing."""
    now = engine.clock()
    waiting = _waiting(engine)
    if not waiting:
        _announce_queue(engine, waiting, {}, {}, {})  # forgets what the last visitors were told
        return
    # Only agents sharing a waiting chat's topic can be rung or count as its places.
    topics = frozenset().union(*(routing_topics(engine, c) for c in waiting))
    routes = {route.agent_id: route for route in agent_routes(engine, topics)}
    ringing = {c.ringing_agent_id for c in waiting if c.ringing_agent_id is not None}
    loads = _loads(engine, set(routes) | ringing)
    for conversation in waiting:
        if conversation.ringing_agent_id is not None and not _still_rings(
            engine, conversation, routes
        ):
            topic_ids = routing_topics(engine, conversation) if loads.limits else frozenset()
            loads.add(conversation.ringing_agent_id, topic_ids, -1)
            _stop_ring(engine, conversation)
    capacities: dict[str, int] = {}
    idle: dict[str, datetime | None] = {}
    for agent_id in routes:
        profile = engine.directory.agent(agent_id)
        capacities[agent_id] = profile.capacity if profile is not None else 0
        idle[agent_id] = agent_presence(engine, agent_id).idle_since
    free = ring_order(routes.values(), loads=loads.total, capacities=capacities, idle_since=idle)
    for conversation in waiting:
        if not free:
            break
        if conversation.ringing_agent_id is not None:
            continue
        topic_ids = routing_topics(engine, conversation)
        for agent_id in free:
            profile = engine.directory.agent(agent_id)
            if (
                profile is not None
                and loads.fits(agent_id, topic_ids)
                and may_take(engine, profile, conversation)
            ):
                _ring(engine, conversation, agent_id, now)
                loads.add(agent_id, topic_ids)
                # The agent goes to the back of the line; off it when full. Full in this
                # chat's topic only, they stay in line for the other topics' chats.
                free.remove(agent_id)
                if loads.total[agent_id] < capacities[agent_id]:
                    free.append(agent_id)
                break
    _announce_queue(engine, waiting, routes, capacities, loads.limits)


def pick_from_queue(engine: ChatEngine, topic_id: str, conversation: Conversation) -> str | None:
    """The agent of `topic_id` the queue's routing would give a chat to now, for an invite
    to that queue (lock held): online, Available, with free capacity, not in the chat
    already, longest idle first; None when nobody is free. The chosen agent counts as
    given work (idle from now), as a ring does."""
    routes = [
        route
        for route in agent_routes(engine, frozenset({topic_id}))
        if not conversation.has_agent(route.agent_id)
    ]
    capacities: dict[str, int] = {}
    idle: dict[str, datetime | None] = {}
    for route in routes:
        profile = engine.directory.agent(route.agent_id)
        capacities[route.agent_id] = profile.capacity if profile is not None else 0
        idle[route.agent_id] = agent_presence(engine, route.agent_id).idle_since
    loads = _loads(engine, capacities)
    topic_ids = routing_topics(engine, conversation)
    free = [
        agent_id
        for agent_id in ring_order(
            routes, loads=loads.total, capacities=capacities, idle_since=idle
        )
        if loads.fits(agent_id, topic_ids)
    ]
    if not free:
        return None
    now = engine.clock()
    agent_presence(engine, free[0]).idle_since = now
    engine.state.save_agent_idle(free[0], now)
    return free[0]


def _announce_queue(
    engine: ChatEngine,
    waiting: list[Conversation],
    routes: dict[str, AgentRoute],
    capacities: dict[str, int],
    limits: dict[str, int],
) -> None:
    """`chat.queued` to each waiting visitor whose position or estimate changed."""
    ahead: dict[frozenset[str], int] = {}
    places: dict[frozenset[str], int] = {}
    told = engine.queue_told
    still = set()
    for conversation in waiting:
        topics = routing_topics(engine, conversation)
        position = ahead[topics] = ahead.get(topics, 0) + 1
        if conversation.channel is not None:
            continue  # a messaging channel's person has no widget to show it
        if topics not in places:
            # An agent's places for these chats: their capacity, or fewer when a topic
            # limits its chats per agent.
            cap = min((limits[t] for t in topics if t in limits), default=None)
            places[topics] = sum(
                min(capacities.get(route.agent_id, 0), cap or capacities.get(route.agent_id, 0))
                for route in routes.values()
                if route.online
                and route.status is not AgentStatus.AWAY
                and can_see(route.topic_ids, topics)
            )
        estimate = _estimate(engine, topics, position, places[topics])
        still.add(conversation.conversation_id)
        if told.get(conversation.conversation_id) == (position, estimate):
            continue
        told[conversation.conversation_id] = (position, estimate)
        engine.bus.publish(
            events.event(
                events.CHAT_QUEUED,
                conversation_id=conversation.conversation_id,
                position=position,
                estimated_wait_secs=estimate,
            ),
            {chat_channel(conversation.conversation_id)},
        )
    for conversation_id in set(told) - still:
        del told[conversation_id]


def _estimate(engine: ChatEngine, topics: frozenset[str], position: int, places: int) -> int | None:
    samples = [secs for topic in topics for secs in engine.handle_secs.get(topic, ())]
    if not samples or places <= 0:
        return None
    return math.ceil(position * (sum(samples) / len(samples)) / places)


def note_chat_ended(engine: ChatEngine, conversation: Conversation) -> None:
    """A visitor chat ended (lock held): its handling time feeds the estimate, and its
    agents are idle from now (they worked until now; routing's order)."""
    now = engine.clock()
    if conversation.accepted_at is not None:
        secs = (now - conversation.accepted_at).total_seconds()
        for topic in routing_topics(engine, conversation):
            engine.handle_secs.setdefault(topic, deque(maxlen=HANDLE_SAMPLES)).append(secs)
    for agent_id in conversation.active_agent_ids():
        agent_presence(engine, agent_id).idle_since = now
        engine.state.save_agent_idle(agent_id, now)


def publish_waiting(engine: ChatEngine, conversation: Conversation) -> None:
    """`chat.waiting` to every online agent who may pick the chat up (lock held)."""
    channels = set()
    for route in agent_routes(engine, routing_topics(engine, conversation)):
        profile = engine.directory.agent(route.agent_id)
        if route.online and profile is not None and may_take(engine, profile, conversation):
            channels.add(agent_channel(route.agent_id))
    if channels:
        engine.bus.publish(
            events.event(events.CHAT_WAITING, chat=chat_of(engine, conversation)), channels
        )


def run_ring_timeouts(engine: ChatEngine) -> int:
    """Pause every agent whose offer rang past its answer time limit, ring the next
    agents, and refresh the queue; returns how many agents were paused."""
    with engine.changing():
        # File every chat again: one a path forgot to note waits at most this sweep.
        engine.workload.rebuild(engine.conversations.values())
        now = engine.clock()
        paused: set[str] = set()
        for conversation in _waiting(engine):
            started, agent_id = conversation.ring_started_at, conversation.ringing_agent_id
            if started is None or agent_id is None:
                continue
            if (now - started).total_seconds() < answer_secs(engine, conversation):
                continue
            _stop_ring(engine, conversation)
            if agent_id in paused:
                continue
            presence = agent_presence(engine, agent_id)
            if presence.status is AgentStatus.AVAILABLE:
                presence.status = AgentStatus.PAUSED
                engine.state.save_agent_status(agent_id, AgentStatus.PAUSED)
                note_agent(engine, agent_id)
                engine.changed_agents[agent_id] = None
                paused.add(agent_id)
        for agent_id in paused:
            profile = engine.directory.agent(agent_id)
            if profile is not None:
                refresh_availability(engine, profile.topic_ids)
        route_waiting(engine)
        return len(paused)


def do_agent_transfer_to_queue(
    engine: ChatEngine, session: AgentSession, *, conversation_id: str, topic_id: str
) -> None:
    """Hand the chat to a topic's queue: the agent leaves it, it waits (keeping its place
    by start time) and rings for that topic's agents, never for the sender again."""
    with engine.changing():
        profile = engine.directory.agent(session.agent_id)
        if profile is None:
            raise ChatForbidden("You no longer have an agent profile.")
        conversation = engine.conversations.get(conversation_id)
        if conversation is None or not conversation.has_agent(profile.agent_id):
            raise ChatNotFound("There is no such chat.")
        if conversation.kind is not ConversationKind.VISITOR:
            raise ChatInvalid("Only a chat with a visitor goes to a queue.")
        if conversation.state is not ConversationState.ACTIVE:
            raise ChatInvalid("Accept the chat first.")
        topic = engine.directory.topics().get(topic_id)
        if topic is None:
            raise ChatNotFound("There is no such topic.")
        if conversation.active_agent_ids() != [profile.agent_id]:
            raise ChatInvalid("Other agents are in this chat: transfer it to one of them.")
        for participant in conversation.participants:
            if participant.kind == "agent" and participant.id == profile.agent_id:
                participant.active = False
        conversation.state = ConversationState.WAITING
        conversation.owner_agent_id = None
        # Not postponed for the next agent; its postpone timer, if any, finds nothing to do.
        conversation.postponed_until = None
        conversation.topic_id = topic.topic_id
        conversation.ringing_agent_id = None
        conversation.ring_started_at = None
        conversation.declined_agent_ids = [profile.agent_id]
        engine.workload.note(conversation)
        message = append_system_line(
            engine, conversation, f"{profile.name} transferred the chat to the {topic.name} queue."
        )
        engine.bus.publish(
            events.event(events.CHAT_WITHDRAWN, conversation_id=conversation_id),
            {agent_channel(profile.agent_id)},
        )
        publish_message(engine, conversation, message)
        publish_waiting(engine, conversation)
        route_waiting(engine)
