"""A chat belongs to the browser holding its resume token, never to a `visitor_id`; a
rated chat is never lost to a crash."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from chat_fakes import BOB, FakeOutbox
from test_chat_engine import World

from connector.chat.actions import agents, due, visitors
from connector.chat.errors import ChatConflict


def test_someone_elses_visitor_id_does_not_open_their_chat(tmp_path: Path) -> None:
    world = World(tmp_path)
    bob, bob_in = world.agent(BOB)
    victim, victim_in = world.visitor("visitor-victim1")
    conversation_id = world.start_chat(victim, victim_in)
    agents.do_agent_accept(world.engine, bob, conversation_id=conversation_id)
    visitors.do_visitor_send(world.engine, victim, client_id="v1", text="My card ends 4242")

    # The attacker read the visitor_id (a cookie page scripts see, shown to agents).
    attacker, attacker_in = world.visitor("visitor-victim1")
    assert attacker_in.last("hello.ok")["chat"] is None
    with pytest.raises(ChatConflict):
        visitors.do_visitor_start(
            world.engine, attacker, client_id="start-x", fields={"firstname": "X"}
        )
    assert attacker_in.of_type("chat.started") == []
    assert attacker_in.of_type("message.created") == []
    with pytest.raises(Exception):  # noqa: B017 - any refusal; nothing may be written
        visitors.do_visitor_send(world.engine, attacker, client_id="a1", text="forged")
    texts = [m.text for m in world.state.messages(conversation_id)]
    assert "forged" not in texts


def test_the_token_holder_resumes_and_restarting_answers_the_same_chat(tmp_path: Path) -> None:
    world = World(tmp_path)
    world.agent(BOB)
    visitor, v_in = world.visitor("visitor-owner01")
    conversation_id = world.start_chat(visitor, v_in)
    token = v_in.last("chat.started")["token"]

    again, again_in = world.visitor("visitor-owner01", token=token)
    assert again_in.last("hello.ok")["chat"]["conversation_id"] == conversation_id
    visitors.do_visitor_start(
        world.engine, again, client_id="start-1", fields={"firstname": "Vera"}
    )
    assert again_in.last("chat.started")["conversation_id"] == conversation_id


class Crash(BaseException):
    """The process dies between saving the rating and queueing the chat's activity."""


class CrashingOutbox(FakeOutbox):
    def enqueue(self, kind: str, key: str, payload: dict[str, Any]) -> None:
        raise Crash


def test_a_chat_rated_just_before_a_crash_is_written_within_seconds_of_the_restart(
    tmp_path: Path,
) -> None:
    first = World(tmp_path, outbox=CrashingOutbox())
    bob, _ = first.agent(BOB)
    visitor, v_in = first.visitor()
    conversation_id = first.start_chat(visitor, v_in)
    agents.do_agent_accept(first.engine, bob, conversation_id=conversation_id)
    agents.do_agent_end(first.engine, bob, conversation_id=conversation_id)
    with pytest.raises(Crash):
        visitors.do_visitor_rate(first.engine, visitor, rating=4)
    first.state.close()

    second = World(tmp_path)
    second.clock.now = first.clock.now
    second.clock.advance(5)  # far less than the rating grace period
    assert due.run_due_timers(second.engine) == 1
    kind, payload = second.outbox.items[conversation_id]
    assert payload["rating"] == 4
