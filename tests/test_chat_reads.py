"""Read receipts on web chats (issue 11): each side's read mark reaches the other side
only when it moves forward, never past the chat's last message, and a visitor can only
mark their own chat."""

from __future__ import annotations

from pathlib import Path

import pytest
from chat_fakes import ANN, ANN_USER, FIELDS, FakeOutbox
from test_chat_engine import World
from test_chat_queues import start
from test_sockets import Server

from connector.chat.actions import agents, reads, visitors
from connector.chat.errors import ChatInvalid, ChatNotFound


@pytest.fixture
def world(tmp_path: Path) -> World:
    return World(tmp_path)


def test_each_side_sees_what_the_other_read_once_and_only_forward(world: World) -> None:
    ann, ann_in = world.agent(ANN)
    visitor, visitor_in, conversation_id = start(world, 1)
    agents.do_agent_accept(world.engine, ann, conversation_id=conversation_id)
    visitors.do_visitor_send(world.engine, visitor, client_id="v1", text="Hello?")
    seq = ann_in.last("message.created")["seq"]

    reads.do_agent_read(world.engine, ann, conversation_id=conversation_id, seq=seq)
    assert visitor_in.last("message.read") == {
        "type": "message.read",
        "conversation_id": conversation_id,
        "seq": seq,
    }
    assert ann_in.of_type("message.read") == []  # not echoed to the reader's side
    # A repeat or an older seq (a second tab, a late frame) is no news.
    reads.do_agent_read(world.engine, ann, conversation_id=conversation_id, seq=seq)
    reads.do_agent_read(world.engine, ann, conversation_id=conversation_id, seq=1)
    assert len(visitor_in.of_type("message.read")) == 1

    agents.do_agent_send(
        world.engine, ann, conversation_id=conversation_id, client_id="a1", text="Hi!"
    )
    answer = visitor_in.last("message.created")["seq"]
    reads.do_visitor_read(world.engine, visitor, seq=answer)
    assert ann_in.last("message.read")["seq"] == answer
    # Ann's console shows it after a reload too.
    _, again = world.agent(ANN)
    (chat,) = again.last("snapshot")["chats"]
    assert chat["visitor_read_seq"] == answer


def test_a_seq_past_the_last_message_is_refused(world: World) -> None:
    ann, _ = world.agent(ANN)
    visitor, visitor_in, conversation_id = start(world, 1)
    agents.do_agent_accept(world.engine, ann, conversation_id=conversation_id)
    last = world.engine.state.conversation(conversation_id).last_seq  # type: ignore[union-attr]
    with pytest.raises(ChatInvalid):
        reads.do_agent_read(world.engine, ann, conversation_id=conversation_id, seq=last + 1)
    with pytest.raises(ChatInvalid):
        reads.do_visitor_read(world.engine, visitor, seq=last + 1)
    assert visitor_in.of_type("message.read") == []


def test_nobody_marks_a_chat_that_is_not_theirs(world: World) -> None:
    ann, ann_in = world.agent(ANN)
    first, _, first_id = start(world, 1)
    _, _, second_id = start(world, 2)
    agents.do_agent_accept(world.engine, ann, conversation_id=first_id)
    agents.do_agent_accept(world.engine, ann, conversation_id=second_id)
    ann_in.clear()
    # The visitor of the first chat names Ann's other chat.
    with pytest.raises(ChatNotFound):
        reads.do_visitor_read(world.engine, first, seq=1, conversation_id=second_id)
    assert ann_in.of_type("message.read") == []
    bob_chat_visitor, bob_in, third_id = start(world, 3)  # waiting, Ann is not in it
    with pytest.raises(ChatNotFound):
        reads.do_agent_read(world.engine, ann, conversation_id=third_id, seq=1)
    assert bob_in.of_type("message.read") == []
    del bob_chat_visitor


def test_the_sockets_carry_read_receipts_both_ways(tmp_path: Path) -> None:
    server = Server(tmp_path, FakeOutbox())
    try:
        ann = server.agent(ANN_USER)
        visitor = server.visitor()
        visitor.send({"type": "chat.start", "client_id": "s1", "fields": FIELDS})
        conversation_id = visitor.expect("chat.started")["conversation_id"]
        ann.expect("chat.offered")
        ann.send({"type": "chat.accept", "conversation_id": conversation_id})
        ann.expect("chat.accepted")
        visitor.send({"type": "message.send", "client_id": "m1", "text": "Anyone?"})
        seq = ann.expect("message.created")["seq"]
        ann.send({"type": "message.read", "conversation_id": conversation_id, "seq": 0})
        assert ann.expect("error")["code"] == "invalid_input"
        ann.send({"type": "message.read", "conversation_id": conversation_id, "seq": seq})
        assert visitor.expect("message.read")["seq"] == seq
        ann.send(
            {
                "type": "message.send",
                "conversation_id": conversation_id,
                "client_id": "a1",
                "text": "Yes",
            }
        )
        answer = visitor.expect("message.created")["seq"]
        visitor.send({"type": "message.read", "seq": answer})
        assert ann.expect("message.read") == {
            "type": "message.read",
            "conversation_id": conversation_id,
            "seq": answer,
        }
    finally:
        server.stop()
