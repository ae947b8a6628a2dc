"""Postponing a chat (issue 11): it leaves the agent's way until its time or the customer's
next message, frees their capacity meanwhile, and its time survives a restart."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from chat_fakes import ANN, ANN_USER, BOB, FIELDS, FakeOutbox
from test_chat_engine import World
from test_chat_queues import offered_ids, start, with_capacity
from test_sockets import Server

from connector.chat.actions import agents, due, postpone, visitors
from connector.chat.errors import ChatEnded, ChatInvalid, ChatNotFound


@pytest.fixture
def world(tmp_path: Path) -> World:
    return World(tmp_path)


def active_chat(world: World) -> tuple[str, Any, Any, Any]:
    ann, ann_in = world.agent(ANN)
    visitor, _, conversation_id = start(world, 1)
    agents.do_agent_accept(world.engine, ann, conversation_id=conversation_id)
    return conversation_id, ann, ann_in, visitor


def test_a_postponed_chat_comes_back_when_the_customer_writes(world: World) -> None:
    conversation_id, ann, ann_in, visitor = active_chat(world)
    until = world.clock() + timedelta(hours=1)
    postpone.do_agent_postpone(world.engine, ann, conversation_id=conversation_id, until=until)
    assert ann_in.last("chat.updated")["chat"]["postponed_until"] == "2026-11-21T11:00:01Z"
    visitors.do_visitor_send(world.engine, visitor, client_id="m1", text="Still there?")
    assert ann_in.last("message.created")["text"] == "Still there?"
    assert ann_in.last("chat.updated")["chat"]["postponed_until"] is None
    # Its time no longer brings anything back.
    world.clock.advance(7200)
    ann_in.clear()
    due.run_due_timers(world.engine)
    assert ann_in.of_type("chat.updated") == []


def test_a_postponed_chat_comes_back_at_its_time_even_after_a_restart(tmp_path: Path) -> None:
    first = World(tmp_path)
    conversation_id, ann, _, _ = active_chat(first)
    until = first.clock() + timedelta(minutes=10)
    postpone.do_agent_postpone(first.engine, ann, conversation_id=conversation_id, until=until)
    first.state.close()

    second = World(tmp_path, outbox=first.outbox)
    _, ann_in = second.agent(ANN)
    (chat,) = ann_in.last("snapshot")["chats"]
    assert chat["postponed_until"] is not None
    second.clock.advance(9 * 60)
    due.run_due_timers(second.engine)
    assert ann_in.of_type("chat.updated") == []
    second.clock.advance(2 * 60)
    due.run_due_timers(second.engine)
    assert ann_in.last("chat.updated")["chat"]["postponed_until"] is None


def test_postponing_frees_the_agents_place_for_the_next_chat(world: World) -> None:
    with_capacity(world, ANN, 1)
    conversation_id, ann, ann_in, _ = active_chat(world)
    _, _, second_id = start(world, 2)
    assert second_id not in offered_ids(ann_in)  # full
    until = world.clock() + timedelta(minutes=30)
    postpone.do_agent_postpone(world.engine, ann, conversation_id=conversation_id, until=until)
    assert offered_ids(ann_in)[-1] == second_id


def test_postponing_is_refused_with_a_reason(world: World) -> None:
    conversation_id, ann, _, visitor = active_chat(world)
    bob, _ = world.agent(BOB)
    now = world.clock()
    for until, reason in (
        (now + timedelta(seconds=30), "at least a minute"),
        (now - timedelta(hours=1), "at least a minute"),
        (now + timedelta(days=2), "at most a day"),
    ):
        with pytest.raises(ChatInvalid, match=reason):
            postpone.do_agent_postpone(
                world.engine, ann, conversation_id=conversation_id, until=until
            )
    with pytest.raises(ChatNotFound):  # not Bob's chat
        postpone.do_agent_postpone(
            world.engine, bob, conversation_id=conversation_id, until=now + timedelta(hours=1)
        )
    visitors.do_visitor_end(world.engine, visitor)
    with pytest.raises(ChatEnded):
        postpone.do_agent_postpone(
            world.engine, ann, conversation_id=conversation_id, until=now + timedelta(hours=1)
        )


# ----- over the socket ------------------------------------------------------------------


def test_the_socket_takes_a_postpone_with_a_zone_only(tmp_path: Path) -> None:
    server = Server(tmp_path, FakeOutbox())
    try:
        ann = server.agent(ANN_USER)
        visitor = server.visitor()
        visitor.send({"type": "chat.start", "client_id": "s1", "fields": FIELDS})
        conversation_id = visitor.expect("chat.started")["conversation_id"]
        ann.expect("chat.offered")
        ann.send({"type": "chat.accept", "conversation_id": conversation_id})
        ann.expect("chat.accepted")
        frame = {"type": "chat.postpone", "conversation_id": conversation_id}
        ann.send({**frame, "until": "2099-01-01T10:00:00"})  # no zone
        assert ann.expect("error")["code"] == "invalid_input"
        ann.send({**frame, "until": "next week"})
        assert ann.expect("error")["code"] == "invalid_input"
        ann.send({**frame, "until": "2099-01-01T10:00:00Z"})  # too far
        error = ann.expect("error")
        assert error["code"] == "invalid_input" and "at most a day" in error["message"]
        soon = (datetime.now(UTC) + timedelta(hours=2)).isoformat()
        ann.send({**frame, "until": soon})
        assert ann.expect("chat.updated")["chat"]["postponed_until"] is not None
    finally:
        server.stop()


def test_a_postponed_chat_the_visitor_ends_comes_back_for_its_end(world: World) -> None:
    conversation_id, ann, ann_in, visitor = active_chat(world)
    until = world.clock() + timedelta(hours=1)
    postpone.do_agent_postpone(world.engine, ann, conversation_id=conversation_id, until=until)
    visitors.do_visitor_end(world.engine, visitor)
    assert world.engine.conversations[conversation_id].postponed_until is None
    stored = world.state.conversation(conversation_id)  # as a restart reads it
    assert stored is not None and stored.postponed_until is None


def test_a_postponed_chat_handed_over_is_not_postponed_for_the_next_agent(world: World) -> None:
    conversation_id, ann, _, _ = active_chat(world)
    bob, bob_in = world.agent(BOB)
    until = world.clock() + timedelta(hours=1)
    postpone.do_agent_postpone(world.engine, ann, conversation_id=conversation_id, until=until)
    agents.do_agent_transfer(world.engine, ann, conversation_id=conversation_id, agent_id=BOB)
    assert bob_in.last("chat.accepted")["chat"]["postponed_until"] is None
