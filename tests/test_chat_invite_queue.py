"""Invite to a queue (issue 11): the topic's routing picks the agent who joins the chat,
as it would pick one for a new chat of that topic."""

from __future__ import annotations

from pathlib import Path

import pytest
from chat_fakes import ANN, ANN_USER, BOB, CID, CID_USER, FIELDS, HELP, SUPPORT, FakeOutbox
from test_chat_engine import World
from test_chat_queues import start, with_capacity
from test_sockets import Server

from connector.chat.actions import agents, visitors
from connector.chat.errors import ChatEnded, ChatNotFound, ChatUnavailable
from connector.chat.model import AgentStatus


@pytest.fixture
def world(tmp_path: Path) -> World:
    return World(tmp_path)


def test_the_support_queue_sends_its_free_agent_into_a_sales_chat(world: World) -> None:
    ann, ann_in = world.agent(ANN)
    visitor, v_in, conversation_id = start(world, 1)
    agents.do_agent_accept(world.engine, ann, conversation_id=conversation_id)
    bob, _ = world.agent(BOB)  # Sales and Support
    _, cid_in = world.agent(CID)  # Support
    agents.do_agent_set_status(world.engine, bob, status=AgentStatus.BUSY)

    agents.do_agent_invite(world.engine, ann, conversation_id=conversation_id, topic_id=SUPPORT)
    chat = cid_in.last("chat.accepted")["chat"]
    assert chat["conversation_id"] == conversation_id
    assert [p["name"] for p in chat["participants"]] == ["Ann", "Cid"]
    assert v_in.last("message.created")["text"] == "Cid joined the chat."
    assert ann_in.last("chat.updated")["chat"]["participants"][-1]["name"] == "Cid"

    # Cid is in it, Bob is Busy: nobody of Support is free; the chat goes on as it was.
    with pytest.raises(ChatUnavailable, match="Nobody in the Support queue is free"):
        agents.do_agent_invite(world.engine, ann, conversation_id=conversation_id, topic_id=SUPPORT)
    agents.do_agent_set_status(world.engine, bob, status=AgentStatus.AVAILABLE)
    agents.do_agent_invite(world.engine, ann, conversation_id=conversation_id, topic_id=SUPPORT)
    assert world.engine.conversations[conversation_id].active_agent_ids() == [ANN, CID, BOB]


def test_a_queue_invite_counts_capacity_as_routing_does(world: World) -> None:
    ann, _ = world.agent(ANN)
    _, _, conversation_id = start(world, 1)
    agents.do_agent_accept(world.engine, ann, conversation_id=conversation_id)
    cid, _ = world.agent(CID)
    with_capacity(world, CID, 1)
    help_visitor, help_in = world.visitor("visitor-help", HELP)
    visitors.do_visitor_start(world.engine, help_visitor, client_id="h1", fields=FIELDS)
    help_id = help_in.last("chat.started")["conversation_id"]
    agents.do_agent_accept(world.engine, cid, conversation_id=help_id)  # Cid is full
    with pytest.raises(ChatUnavailable):
        agents.do_agent_invite(world.engine, ann, conversation_id=conversation_id, topic_id=SUPPORT)


def test_a_queue_invite_is_refused_for_an_unknown_topic_or_an_ended_chat(world: World) -> None:
    ann, _ = world.agent(ANN)
    world.agent(CID)
    visitor, _, conversation_id = start(world, 1)
    agents.do_agent_accept(world.engine, ann, conversation_id=conversation_id)
    with pytest.raises(ChatNotFound, match="no such topic"):
        agents.do_agent_invite(
            world.engine,
            ann,
            conversation_id=conversation_id,
            topic_id="10000000-0000-0000-0000-0000000000ff",
        )
    visitors.do_visitor_end(world.engine, visitor)
    with pytest.raises(ChatEnded):
        agents.do_agent_invite(world.engine, ann, conversation_id=conversation_id, topic_id=SUPPORT)


def test_the_socket_takes_an_invite_to_one_target_only(tmp_path: Path) -> None:
    server = Server(tmp_path, FakeOutbox())
    try:
        ann = server.agent(ANN_USER)
        cid = server.agent(CID_USER)
        visitor = server.visitor()
        visitor.send({"type": "chat.start", "client_id": "s1", "fields": FIELDS})
        conversation_id = visitor.expect("chat.started")["conversation_id"]
        ann.expect("chat.offered")
        ann.send({"type": "chat.accept", "conversation_id": conversation_id})
        ann.expect("chat.accepted")
        invite = {"type": "chat.invite", "conversation_id": conversation_id}
        ann.send(invite)
        assert ann.expect("error")["code"] == "invalid_input"
        ann.send({**invite, "topic_id": SUPPORT, "agent_id": CID})
        assert ann.expect("error")["code"] == "invalid_input"
        ann.send({**invite, "topic_id": SUPPORT})
        assert cid.expect("chat.accepted")["chat"]["conversation_id"] == conversation_id
    finally:
        server.stop()
