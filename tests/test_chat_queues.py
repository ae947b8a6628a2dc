"""Routing: the ring, capacity, the answer time limit and the queue (actions/queues.py),
in the engine without sockets (World from test_chat_engine)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from chat_fakes import ANN, BOB, CID, FIELDS, HELP, SALES, SUPPORT, Inbox
from test_chat_engine import World

from connector.chat.actions import agents, offers, queues, visitors
from connector.chat.errors import ChatInvalid, ChatNotFound
from connector.chat.model import AgentStatus
from connector.chat.sessions import AgentSession, VisitorSession
from connector.crm.directory import TopicRecord


@pytest.fixture
def world(tmp_path: Path) -> World:
    return World(tmp_path)


def with_capacity(world: World, agent_id: str, capacity: int) -> None:
    profile = world.directory.agent(agent_id)
    assert profile is not None
    world.directory.set_agent(replace(profile, capacity=capacity))


def start(world: World, n: int) -> tuple[VisitorSession, Inbox, str]:
    world.clock.advance(1)  # chats queue in the order they started
    visitor, inbox = world.visitor(f"visitor-{n:04d}")
    visitors.do_visitor_start(world.engine, visitor, client_id=f"start-{n}", fields=FIELDS)
    return visitor, inbox, str(inbox.last("chat.started")["conversation_id"])


def offered_ids(inbox: Inbox) -> list[str]:
    return [f["chat"]["conversation_id"] for f in inbox.of_type("chat.offered")]


def status_of(world: World, session: AgentSession, inbox: Inbox) -> str:
    agents.do_flush_presence(world.engine)
    rows = [r for f in inbox.of_type("agents.updated") for r in f["agents"]]
    return str([r for r in rows if r["agent_id"] == session.agent_id][-1]["status"])


def test_capacity_one_queues_the_second_chat_tells_its_place_and_offers_it_when_the_first_ends(
    world: World,
) -> None:
    with_capacity(world, ANN, 1)
    ann, ann_in = world.agent(ANN)
    first_visitor, first_in, first = start(world, 1)
    assert first_in.last("chat.queued") == {
        "type": "chat.queued",
        "conversation_id": first,
        "position": 1,
        "estimated_wait_secs": None,
    }
    agents.do_agent_accept(world.engine, ann, conversation_id=first)

    _, second_in, second = start(world, 2)
    _, third_in, third = start(world, 3)
    # Ann is full: nothing rings; both wait, in the order they started.
    assert offered_ids(ann_in) == [first]
    assert second_in.last("chat.queued")["position"] == 1
    assert third_in.last("chat.queued")["position"] == 2
    # Ann may still pick one up herself from Waiting chats.
    assert {f["chat"]["conversation_id"] for f in ann_in.of_type("chat.waiting")} == {
        first,
        second,
        third,
    }

    world.clock.advance(118)  # 120 s after Ann accepted it (two starts took 1 s each)
    visitors.do_visitor_end(world.engine, first_visitor)
    # The freed place rings at once for the oldest waiting chat. The third has an
    # estimate now: one place, a chat takes 120 s, one chat ahead of it.
    assert offered_ids(ann_in) == [first, second]
    assert third_in.last("chat.queued")["estimated_wait_secs"] == 240
    agents.do_agent_accept(world.engine, ann, conversation_id=second)
    assert third_in.last("chat.queued") == {
        "type": "chat.queued",
        "conversation_id": third,
        "position": 1,
        "estimated_wait_secs": 120,
    }
    assert second_in.of_type("chat.queued")[-1]["position"] == 1
    # Only changes are sent.
    told = len(third_in.of_type("chat.queued"))
    queues.run_ring_timeouts(world.engine)
    assert len(third_in.of_type("chat.queued")) == told


def test_a_chat_rings_for_one_agent_at_a_time_longest_idle_first(world: World) -> None:
    ann, ann_in = world.agent(ANN)
    bob, bob_in = world.agent(BOB)
    _, _, first = start(world, 1)
    assert offered_ids(ann_in) == [first] and offered_ids(bob_in) == []
    agents.do_agent_accept(world.engine, ann, conversation_id=first)
    world.clock.advance(5)
    _, _, second = start(world, 2)
    assert offered_ids(bob_in) == [second]  # Ann was offered one 5 s ago; Bob never
    agents.do_agent_accept(world.engine, bob, conversation_id=second)
    world.clock.advance(5)
    _, _, third = start(world, 3)
    assert offered_ids(ann_in) == [first, third]  # Ann's last offer is the older one


def test_reject_rings_the_next_agent(world: World) -> None:
    ann, ann_in = world.agent(ANN)
    bob, bob_in = world.agent(BOB)
    _, _, chat = start(world, 1)
    offers.do_agent_reject(world.engine, ann, conversation_id=chat)
    assert ann_in.last("chat.withdrawn")["conversation_id"] == chat
    assert offered_ids(bob_in) == [chat]
    offers.do_agent_reject(world.engine, bob, conversation_id=chat)
    # Nobody else serves Sales: it waits; neither is rung again.
    assert offered_ids(ann_in) == [chat] and offered_ids(bob_in) == [chat]
    assert bob_in.last("chat.withdrawn")["conversation_id"] == chat


def test_a_ring_past_the_answer_time_limit_pauses_the_agent_and_rings_the_next(
    world: World,
) -> None:
    world.directory.set_topic(TopicRecord(SALES, "Sales", "#ff0000", answer_secs=20))
    with_capacity(world, BOB, 1)
    ann, ann_in = world.agent(ANN)
    bob, bob_in = world.agent(BOB)
    _, _, chat = start(world, 1)
    world.clock.advance(19)
    assert queues.run_ring_timeouts(world.engine) == 0
    assert offered_ids(bob_in) == []
    world.clock.advance(1)
    assert queues.run_ring_timeouts(world.engine) == 1
    assert ann_in.last("chat.unoffered")["conversation_id"] == chat
    assert offered_ids(bob_in) == [chat]
    assert status_of(world, ann, ann_in) == "paused"
    # A paused agent is offered nothing (Bob is full: it waits), and cannot pause
    # herself; Available ends the pause.
    _, _, later = start(world, 2)
    assert later not in offered_ids(ann_in) + offered_ids(bob_in)
    with pytest.raises(ChatInvalid):
        agents.do_agent_set_status(world.engine, ann, status=AgentStatus.PAUSED)
    agents.do_agent_set_status(world.engine, ann, status=AgentStatus.AVAILABLE)
    assert status_of(world, ann, ann_in) == "available"
    assert offered_ids(ann_in) == [chat, later]  # the second chat rings for her now


def test_the_ring_and_the_pause_survive_a_restart(tmp_path: Path) -> None:
    first = World(tmp_path)
    first.agent(ANN)
    first.agent(BOB)
    _, _, chat = start(first, 1)

    again = World(tmp_path)
    again.clock.now = first.clock.now
    _, ann_in = again.agent(ANN)
    _, bob_in = again.agent(BOB)
    assert [c["conversation_id"] for c in ann_in.last("snapshot")["incoming"]] == [chat]
    assert bob_in.last("snapshot")["incoming"] == []
    again.clock.advance(31)  # past the default 30 s
    queues.run_ring_timeouts(again.engine)
    assert offered_ids(bob_in) == [chat]
    assert World(tmp_path).engine.agents[ANN].status is AgentStatus.PAUSED


def test_an_agent_transfers_a_chat_to_another_topics_queue(world: World) -> None:
    ann, ann_in = world.agent(ANN)  # Sales
    _, cid_in = world.agent(CID)  # Support
    _, visitor_in, chat = start(world, 1)
    agents.do_agent_accept(world.engine, ann, conversation_id=chat)
    with pytest.raises(ChatNotFound):
        queues.do_agent_transfer_to_queue(
            world.engine, ann, conversation_id=chat, topic_id="10000000-0000-0000-0000-000000000009"
        )

    queues.do_agent_transfer_to_queue(world.engine, ann, conversation_id=chat, topic_id=SUPPORT)

    assert ann_in.last("chat.withdrawn")["conversation_id"] == chat
    assert offered_ids(cid_in) == [chat]
    lines = [f["text"] for f in visitor_in.of_type("message.created")]
    assert lines[-1] == "Ann transferred the chat to the Support queue."
    assert visitor_in.last("chat.queued")["position"] == 1
    agents.do_agent_accept(world.engine, world.agent(CID)[0], conversation_id=chat)
    assert world.engine.conversations[chat].active_agent_ids() == [CID]


def test_a_topics_chats_per_agent_limit_queues_its_chats_while_other_topics_still_ring(
    world: World,
) -> None:
    # Bob answers Sales and Support with his own 3 places; Sales allows him one at a time.
    world.directory.set_topic(TopicRecord(SALES, "Sales", "#ff0000", max_per_agent=1))
    bob, bob_in = world.agent(BOB)
    first_visitor, _, first = start(world, 1)
    agents.do_agent_accept(world.engine, bob, conversation_id=first)
    _, second_in, second = start(world, 2)
    # Sales is full for Bob: the second Sales chat waits though he has two places left.
    assert offered_ids(bob_in) == [first]
    assert second_in.last("chat.queued")["position"] == 1
    world.clock.advance(1)
    help_visitor, help_in = world.visitor("visitor-help", widget_id=HELP)
    visitors.do_visitor_start(world.engine, help_visitor, client_id="help-1", fields=FIELDS)
    support_chat = str(help_in.last("chat.started")["conversation_id"])
    # A Support chat still rings for him: the limit is the topic's, not his.
    assert offered_ids(bob_in) == [first, support_chat]
    agents.do_agent_accept(world.engine, bob, conversation_id=support_chat)
    assert offered_ids(bob_in) == [first, support_chat]

    visitors.do_visitor_end(world.engine, first_visitor)
    # His Sales place freed: the waiting Sales chat rings for him now.
    assert offered_ids(bob_in) == [first, support_chat, second]


def test_the_chats_per_agent_limit_passes_the_topics_chat_to_a_colleague(world: World) -> None:
    world.directory.set_topic(TopicRecord(SALES, "Sales", "#ff0000", max_per_agent=1))
    ann, ann_in = world.agent(ANN)
    bob, bob_in = world.agent(BOB)
    _, _, first = start(world, 1)
    _, _, second = start(world, 2)
    _, _, third = start(world, 3)
    # One Sales chat each (longest idle first: neither was offered, so by id), the third
    # waits for a Sales place though both have places of their own left.
    assert offered_ids(ann_in) == [first]
    assert offered_ids(bob_in) == [second]
    offers.do_agent_reject(world.engine, ann, conversation_id=first)
    # Bob has a Sales chat ringing already: the rejected chat waits rather than ring him,
    # and Ann's freed Sales place goes to the next chat in the queue.
    assert offered_ids(bob_in) == [second]
    assert offered_ids(ann_in) == [first, third]
