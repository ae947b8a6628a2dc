"""Routing and recipients: pure functions, no sockets."""

from __future__ import annotations

from datetime import UTC, datetime

from connector.chat.model import (
    AgentStatus,
    Conversation,
    ConversationKind,
    ConversationState,
    Participant,
)
from connector.chat.routing import (
    AgentRoute,
    agents_for_chat,
    available_topics,
    can_see,
    conversation_channels,
    fits_topics,
    watcher_channels,
    widget_available,
)

SALES, SUPPORT = "sales", "support"


def route(
    agent_id: str, *topics: str, status: AgentStatus = AgentStatus.AVAILABLE, online: bool = True
) -> AgentRoute:
    return AgentRoute(agent_id, frozenset(topics), status, online)


def test_an_agent_sees_a_widget_only_through_a_shared_topic() -> None:
    assert can_see(frozenset({SALES}), frozenset({SALES, SUPPORT}))
    assert not can_see(frozenset({SALES}), frozenset({SUPPORT}))
    assert not can_see(frozenset(), frozenset({SUPPORT}))


def test_a_chat_is_offered_to_online_available_matching_agents_only() -> None:
    agents = [
        route("ann", SALES),
        route("bob", SALES, status=AgentStatus.BUSY),
        route("cid", SALES, status=AgentStatus.AWAY),
        route("dee", SALES, online=False),
        route("eve", SUPPORT),
        route("fay", SUPPORT, SALES),
    ]
    assert agents_for_chat(frozenset({SALES}), agents) == ["ann", "fay"]


def test_a_widget_is_available_only_when_on_and_someone_can_take_it() -> None:
    agents = [
        route("ann", SALES),
        route("bob", SUPPORT, status=AgentStatus.BUSY),
        route("dee", SUPPORT, online=False),
    ]
    topics = available_topics(agents)
    assert topics == frozenset({SALES})
    assert widget_available(True, frozenset({SALES}), topics)
    assert widget_available(True, frozenset({SUPPORT, SALES}), topics)
    assert not widget_available(False, frozenset({SALES}), topics)
    assert not widget_available(True, frozenset({SUPPORT}), topics)
    assert not widget_available(True, frozenset(), topics)


def test_conversation_events_reach_its_current_agents_and_its_visitor() -> None:
    conversation = Conversation(
        "c1",
        ConversationKind.VISITOR,
        ConversationState.ACTIVE,
        datetime.now(UTC),
        participants=[
            Participant("agent", "ann", "Ann", active=False),
            Participant("agent", "bob", "Bob"),
        ],
    )
    assert conversation_channels(conversation) == {"agent:bob", "chat:c1"}
    assert conversation_channels(conversation, visitor=False) == {"agent:bob"}
    agent_chat = Conversation(
        "c2",
        ConversationKind.AGENT,
        ConversationState.ACTIVE,
        datetime.now(UTC),
        participants=[Participant("agent", "ann", "Ann"), Participant("agent", "bob", "Bob")],
    )
    assert conversation_channels(agent_chat) == {"agent:ann", "agent:bob"}


def test_visitor_presence_goes_to_online_agents_of_the_widget_whatever_their_status() -> None:
    agents = [
        route("ann", SALES, status=AgentStatus.AWAY),
        route("bob", SUPPORT),
        route("cid", SALES, online=False),
    ]
    assert watcher_channels(frozenset({SALES}), agents) == {"agent:ann"}


def test_fits_topics_checks_only_the_topics_that_limit_chats_per_agent() -> None:
    loads = {("ann", "sales"): 1, ("ann", "support"): 4}
    limits = {"sales": 2}
    assert fits_topics("ann", {"sales", "support"}, topic_loads=loads, limits=limits)
    assert not fits_topics("ann", {"sales"}, topic_loads=loads, limits={"sales": 1})
    # A chat of several topics needs a place in each that limits.
    assert not fits_topics(
        "ann", {"sales", "support"}, topic_loads=loads, limits={"sales": 2, "support": 4}
    )
    assert fits_topics("bob", {"sales"}, topic_loads=loads, limits={"sales": 1})
