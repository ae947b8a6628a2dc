"""Rejecting an offered chat: the engine without sockets (World from test_chat_engine)."""

from __future__ import annotations

from pathlib import Path

import pytest
from chat_fakes import ANN, BOB, CID
from test_chat_engine import World

from connector.chat.actions import agents, offers, visitors
from connector.chat.errors import ChatConflict, ChatEnded, ChatNotFound
from connector.chat.model import AgentStatus


@pytest.fixture
def world(tmp_path: Path) -> World:
    return World(tmp_path)


def test_a_rejected_chat_leaves_that_agent_and_stays_offered_to_the_others(world: World) -> None:
    ann, ann_in = world.agent(ANN)
    bob, bob_in = world.agent(BOB)
    visitor, v_in = world.visitor()
    conversation_id = world.start_chat(visitor, v_in)

    offers.do_agent_reject(world.engine, ann, conversation_id=conversation_id)

    assert ann_in.last("chat.withdrawn")["conversation_id"] == conversation_id
    assert bob_in.of_type("chat.withdrawn") == []
    # Ann's console reconnecting, or Ann going Busy and Available again, does not bring
    # it back; she cannot accept it either. Bob still can.
    _, ann_again = world.agent(ANN)
    assert ann_again.last("snapshot")["incoming"] == []
    agents.do_agent_set_status(world.engine, ann, status=AgentStatus.BUSY)
    agents.do_agent_set_status(world.engine, ann, status=AgentStatus.AVAILABLE)
    assert [f["chat"]["conversation_id"] for f in ann_in.of_type("chat.offered")] == [
        conversation_id
    ]  # the first offer only
    with pytest.raises(ChatNotFound):
        agents.do_agent_accept(world.engine, ann, conversation_id=conversation_id)
    with pytest.raises(ChatNotFound):
        offers.do_agent_reject(world.engine, ann, conversation_id=conversation_id)
    agents.do_agent_accept(world.engine, bob, conversation_id=conversation_id)
    assert bob_in.last("chat.accepted")["chat"]["state"] == "active"
    # The visitor was never told about the rejection.
    assert "Ann" not in " ".join(str(f) for f in v_in.of_type("message.created"))


def test_a_rejection_survives_a_restart(tmp_path: Path) -> None:
    first = World(tmp_path)
    ann, _ = first.agent(ANN)
    first.agent(BOB)
    visitor, v_in = first.visitor()
    conversation_id = first.start_chat(visitor, v_in)
    offers.do_agent_reject(first.engine, ann, conversation_id=conversation_id)

    again = World(tmp_path)
    _, ann_in = again.agent(ANN)
    _, bob_in = again.agent(BOB)
    assert ann_in.last("snapshot")["incoming"] == []
    assert [c["conversation_id"] for c in bob_in.last("snapshot")["incoming"]] == [conversation_id]


def test_only_a_waiting_chat_offered_to_the_agent_can_be_rejected(world: World) -> None:
    ann, _ = world.agent(ANN)
    bob, _ = world.agent(BOB)
    cid, _ = world.agent(CID)  # Support: the Shop chat is never offered to Cid
    visitor, v_in = world.visitor()
    conversation_id = world.start_chat(visitor, v_in)
    with pytest.raises(ChatNotFound):
        offers.do_agent_reject(world.engine, cid, conversation_id=conversation_id)
    with pytest.raises(ChatNotFound):
        offers.do_agent_reject(
            world.engine, ann, conversation_id="00000000-0000-0000-0000-000000000000"
        )
    agents.do_agent_accept(world.engine, bob, conversation_id=conversation_id)
    with pytest.raises(ChatConflict):
        offers.do_agent_reject(world.engine, ann, conversation_id=conversation_id)

    other, o_in = world.visitor("visitor-0002")
    second = world.start_chat(other, o_in)
    visitors.do_visitor_end(world.engine, other)
    with pytest.raises((ChatEnded, ChatNotFound)):
        offers.do_agent_reject(world.engine, ann, conversation_id=second)
