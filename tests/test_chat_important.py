"""Marking a chat important (issue 11): every agent in it sees the star, the mark survives
a restart and another process on Redis, and the activity is written with priority High."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from chat_fakes import ANN, ANN_USER, BOB, FIELDS, FakeOutbox
from test_chat_aside_on_redis import chat_on, process
from test_chat_engine import Clock, World
from test_chat_queues import start
from test_sockets import Server

from connector.chat.actions import agents, important, visitors
from connector.chat.errors import ChatEnded, ChatNotFound
from connector.crm.chat_activity import FinishedChat, chat_activity_payload


@pytest.fixture
def world(tmp_path: Path) -> World:
    return World(tmp_path)


def chat_with_two_agents(world: World) -> tuple[str, Any, Any, Any, Any, Any]:
    ann, ann_in = world.agent(ANN)
    bob, bob_in = world.agent(BOB)
    visitor, visitor_in, conversation_id = start(world, 1)
    agents.do_agent_accept(world.engine, ann, conversation_id=conversation_id)
    agents.do_agent_invite(world.engine, ann, conversation_id=conversation_id, agent_id=BOB)
    return conversation_id, ann, ann_in, bob_in, visitor, visitor_in


def test_every_agent_in_the_chat_sees_the_mark_and_the_visitor_does_not(world: World) -> None:
    conversation_id, ann, ann_in, bob_in, _, visitor_in = chat_with_two_agents(world)
    visitor_in.clear()
    important.do_agent_mark_important(
        world.engine, ann, conversation_id=conversation_id, important=True
    )
    assert ann_in.last("chat.updated")["chat"]["important"] is True
    assert bob_in.last("chat.updated")["chat"]["important"] is True
    assert visitor_in.frames == []
    # The same state again publishes nothing; clearing it does.
    bob_in.clear()
    important.do_agent_mark_important(
        world.engine, ann, conversation_id=conversation_id, important=True
    )
    assert bob_in.of_type("chat.updated") == []
    important.do_agent_mark_important(
        world.engine, ann, conversation_id=conversation_id, important=False
    )
    assert bob_in.last("chat.updated")["chat"]["important"] is False


def test_an_agent_outside_the_chat_cannot_mark_it(world: World) -> None:
    ann, _ = world.agent(ANN)
    bob, _ = world.agent(BOB)
    _, _, conversation_id = start(world, 1)
    agents.do_agent_accept(world.engine, ann, conversation_id=conversation_id)
    with pytest.raises(ChatNotFound):
        important.do_agent_mark_important(
            world.engine, bob, conversation_id=conversation_id, important=True
        )
    assert world.engine.state.conversation(conversation_id).important is False  # type: ignore[union-attr]


def test_the_mark_survives_a_restart_and_is_written_as_high_priority(tmp_path: Path) -> None:
    first = World(tmp_path)
    ann, _ = first.agent(ANN)
    _, _, conversation_id = start(first, 1)
    agents.do_agent_accept(first.engine, ann, conversation_id=conversation_id)
    important.do_agent_mark_important(
        first.engine, ann, conversation_id=conversation_id, important=True
    )
    first.state.close()

    second = World(tmp_path, outbox=first.outbox)
    ann, ann_in = second.agent(ANN)
    (chat,) = ann_in.last("snapshot")["chats"]
    assert chat["important"] is True
    # The visitor is gone since the restart: the end writes the activity at once.
    agents.do_agent_end(second.engine, ann, conversation_id=conversation_id)
    ((_, payload),) = second.outbox.items.values()
    assert chat_activity_payload(FinishedChat.from_dict(payload))["prioritycode"] == 2
    with pytest.raises(ChatEnded):
        important.do_agent_mark_important(
            second.engine, ann, conversation_id=conversation_id, important=False
        )


def test_an_unmarked_chat_is_written_with_normal_priority(world: World) -> None:
    ann, _ = world.agent(ANN)
    visitor, _, conversation_id = start(world, 1)
    agents.do_agent_accept(world.engine, ann, conversation_id=conversation_id)
    agents.do_agent_end(world.engine, ann, conversation_id=conversation_id)
    visitors.do_visitor_rate(world.engine, visitor, rating=5)
    ((_, payload),) = world.outbox.items.values()
    assert chat_activity_payload(FinishedChat.from_dict(payload))["prioritycode"] == 1


def test_the_mark_set_on_one_process_is_seen_by_the_other(redis_url: str) -> None:
    clock, outbox = Clock(), FakeOutbox()
    here, there = process(redis_url, clock, outbox), process(redis_url, clock, outbox)
    _, bob, _, conversation_id = chat_on(here, there)
    important.do_agent_mark_important(there, bob, conversation_id=conversation_id, important=True)
    with here.reading():
        stored = here.state.conversation(conversation_id)
    assert stored is not None and stored.important is True


def test_the_socket_takes_the_mark_as_a_boolean_only(tmp_path: Path) -> None:
    server = Server(tmp_path, FakeOutbox())
    try:
        ann = server.agent(ANN_USER)
        visitor = server.visitor()
        visitor.send({"type": "chat.start", "client_id": "s1", "fields": FIELDS})
        conversation_id = visitor.expect("chat.started")["conversation_id"]
        ann.expect("chat.offered")
        ann.send({"type": "chat.accept", "conversation_id": conversation_id})
        ann.expect("chat.accepted")
        frame = {"type": "chat.important", "conversation_id": conversation_id}
        ann.send({**frame, "important": "very"})
        assert ann.expect("error")["code"] == "invalid_input"
        ann.send({**frame, "important": True})
        assert ann.expect("chat.updated")["chat"]["important"] is True
    finally:
        server.stop()
