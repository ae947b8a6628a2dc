"""A chat belongs to the browser holding its resume token, never to a `visitor_id`."""

from __future__ import annotations

from pathlib import Path

import pytest
from chat_fakes import BOB
from test_chat_engine import World

from connector.chat.errors import ChatConflict


def test_someone_elses_visitor_id_does_not_open_their_chat(tmp_path: Path) -> None:
    world = World(tmp_path)
    bob, bob_in = world.agent(BOB)
    victim, victim_in = world.visitor("visitor-victim1")
    conversation_id = world.start_chat(victim, victim_in)
    world.engine.do_agent_accept(bob, conversation_id=conversation_id)
    world.engine.do_visitor_send(victim, client_id="v1", text="My card ends 4242")

    # The attacker read the visitor_id (a cookie page scripts see, shown to agents).
    attacker, attacker_in = world.visitor("visitor-victim1")
    assert attacker_in.last("hello.ok")["chat"] is None
    with pytest.raises(ChatConflict):
        world.engine.do_visitor_start(attacker, client_id="start-x", fields={"firstname": "X"})
    assert attacker_in.of_type("chat.started") == []
    assert attacker_in.of_type("message.created") == []
    with pytest.raises(Exception):  # noqa: B017 - any refusal; nothing may be written
        world.engine.do_visitor_send(attacker, client_id="a1", text="forged")
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
    world.engine.do_visitor_start(again, client_id="start-1", fields={"firstname": "Vera"})
    assert again_in.last("chat.started")["conversation_id"] == conversation_id
