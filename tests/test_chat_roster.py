"""Routing reads the roster (online agents by topic) and the workload (waiting chats, each
agent's chats), never every agent or chat; both are filed again by the engine's sweep
(connector/chat/roster.py, connector/chat/workload.py, docs/performance.md)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from chat_fakes import ANN, BOB, CID, SALES, SUPPORT
from test_chat_engine import World

from connector.chat.actions import agents, conversations, offers, queues
from connector.chat.workload import Workload


def test_a_chat_from_sign_in_to_its_end_never_lists_every_agent(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    world = World(tmp_path)

    def every_agent() -> None:
        raise AssertionError("listed every agent of the Directory")

    monkeypatch.setattr(world.directory, "agents", every_agent)
    bob, bob_in = world.agent(BOB)
    visitor, v_in = world.visitor()
    assert v_in.last("hello.ok")["available"] is True
    conversation_id = world.start_chat(visitor, v_in)
    assert bob_in.last("chat.offered")["chat"]["conversation_id"] == conversation_id

    agents.do_agent_accept(world.engine, bob, conversation_id=conversation_id)
    agents.do_agent_end(world.engine, bob, conversation_id=conversation_id)
    agents.do_agent_disconnect(world.engine, bob)

    assert v_in.last("chat.ended")["conversation_id"] == conversation_id
    assert v_in.last("availability")["available"] is False


def test_an_agent_given_a_topic_in_crm_is_offered_its_chats_after_the_next_sweep(
    tmp_path: Path,
) -> None:
    world = World(tmp_path)
    cid, cid_in = world.agent(CID)  # Support only: the Shop widget (Sales) has nobody
    visitor, v_in = world.visitor()
    assert v_in.last("hello.ok")["available"] is False

    profile = world.directory.agent(CID)
    assert profile is not None
    world.directory.set_agent(replace(profile, topic_ids=frozenset({SALES, SUPPORT})))
    conversations.do_refresh_availability(world.engine)  # the sweep, once a second

    assert v_in.last("availability")["available"] is True
    conversation_id = world.start_chat(visitor, v_in)
    assert cid_in.last("chat.offered")["chat"]["conversation_id"] == conversation_id


def test_a_waiting_chat_no_path_noted_still_rings_at_the_next_sweep(tmp_path: Path) -> None:
    world = World(tmp_path)
    ann, ann_in = world.agent(ANN)
    _, bob_in = world.agent(BOB)
    visitor, v_in = world.visitor()
    conversation_id = world.start_chat(visitor, v_in)
    assert ann_in.last("chat.offered")["chat"]["conversation_id"] == conversation_id

    world.engine.workload = Workload()  # as if the path that made it wait had not noted it
    offers.do_agent_reject(world.engine, ann, conversation_id=conversation_id)
    assert bob_in.of_type("chat.offered") == []  # routing did not see it waiting

    queues.run_ring_timeouts(world.engine)  # the sweep, once a second, files every chat

    assert bob_in.last("chat.offered")["chat"]["conversation_id"] == conversation_id
