"""The supervisor in the engine without sockets (World from test_chat_engine): the board,
joining, and a private message to a chat's agent; each refused to a plain agent."""

from __future__ import annotations

from pathlib import Path

import pytest
from chat_fakes import ANN, BOB, CID, Inbox
from test_chat_engine import World

from connector.chat.actions import agents, consults, supervision, visitors
from connector.chat.errors import ChatForbidden, ChatNotFound
from connector.chat.sessions import AgentSession


@pytest.fixture
def world(tmp_path: Path) -> World:
    return World(tmp_path)


def supervisor(world: World, agent_id: str) -> tuple[AgentSession, Inbox]:
    session, inbox = world.agent(agent_id)
    session.supervisor = True
    return session, inbox


def test_the_board_shows_every_open_chat_and_each_topics_queue(world: World) -> None:
    ann, _ = world.agent(ANN)
    visitor, v_in = world.visitor()
    conversation_id = world.start_chat(visitor, v_in)
    board = supervision.supervisor_board(world.engine)
    (chat,) = board["chats"]
    assert (chat["conversation_id"], chat["state"], chat["agents"]) == (
        conversation_id,
        "waiting",
        [],
    )
    waiting = {q["name"]: q["waiting"] for q in board["queues"]}
    assert sum(waiting.values()) >= 1
    agents.do_agent_accept(world.engine, ann, conversation_id=conversation_id)
    board = supervision.supervisor_board(world.engine)
    assert board["chats"][0]["agents"] == [{"agent_id": ANN, "name": "Ann"}]
    assert {a["agent_id"]: a["chats"] for a in board["agents"]}[ANN] == 1
    assert [m["text"] for m in supervision.access_supervised_chat(world.engine, conversation_id)]


def test_only_a_supervisor_joins_uninvited_or_messages_an_agent_of_a_chat_they_are_not_in(
    world: World,
) -> None:
    ann, _ = world.agent(ANN)
    bob, _ = world.agent(BOB)
    cid, cid_in = supervisor(world, CID)
    visitor, v_in = world.visitor()
    conversation_id = world.start_chat(visitor, v_in)
    agents.do_agent_accept(world.engine, ann, conversation_id=conversation_id)

    with pytest.raises(ChatForbidden):
        supervision.do_supervisor_join(world.engine, bob, conversation_id=conversation_id)
    with pytest.raises(ChatNotFound):
        consults.do_consult_start(world.engine, bob, conversation_id=conversation_id, agent_id=ANN)

    consults.do_consult_start(world.engine, cid, conversation_id=conversation_id, agent_id=ANN)
    consult = cid_in.last("chat.accepted")["chat"]
    assert consult["consult_of"]["conversation_id"] == conversation_id
    supervision.do_supervisor_join(world.engine, cid, conversation_id=conversation_id)
    assert cid_in.last("chat.accepted")["chat"]["conversation_id"] == conversation_id
    assert "joined the chat" in v_in.last("message.created")["text"]


def test_the_board_goes_whole_at_connect_then_only_its_changed_rows(world: World) -> None:
    ann, ann_in = world.agent(ANN)
    cid_in = Inbox()
    cid = AgentSession(cid_in.subscriber, CID, supervisor=True)
    agents.do_agent_connect(world.engine, cid)
    supervision.watch_board(world.engine, cid)
    supervision.watch_board(world.engine, ann)  # a plain agent: no board
    (first,) = cid_in.of_type("supervisor.board")
    assert first["board"]["chats"] == []
    assert {a["agent_id"] for a in first["board"]["agents"]} >= {ANN, CID}

    assert supervision.do_push_board(world.engine) is False  # unchanged since connect
    visitor, v_in = world.visitor()
    conversation_id = world.start_chat(visitor, v_in)
    assert supervision.do_push_board(world.engine) is True
    started = cid_in.last("supervisor.board_changed")
    # The new chat and the queue it waits in; the agents did not change.
    assert [c["conversation_id"] for c in started["changed"]["chats"]] == [conversation_id]
    assert [q["waiting"] for q in started["changed"]["queues"]] == [1]
    assert "agents" not in started["changed"] and started["removed"] == {}

    agents.do_agent_accept(world.engine, ann, conversation_id=conversation_id)
    supervision.do_push_board(world.engine)
    accepted = cid_in.last("supervisor.board_changed")
    assert accepted["changed"]["chats"][0]["state"] == "active"
    assert [a["agent_id"] for a in accepted["changed"]["agents"]] == [ANN]  # 1 chat now

    visitors.do_visitor_end(world.engine, visitor)
    supervision.do_push_board(world.engine)
    ended = cid_in.last("supervisor.board_changed")
    assert ended["removed"] == {"chats": [conversation_id]}
    assert ann_in.of_type("supervisor.board") == []
    assert ann_in.of_type("supervisor.board_changed") == []
    assert supervision.do_push_board(world.engine) is False
    # One whole board for the whole session.
    assert len(cid_in.of_type("supervisor.board")) == 1


def test_a_supervisor_who_connects_later_gets_the_board_as_the_others_have_it(
    world: World,
) -> None:
    bob_in, cid_in = Inbox(), Inbox()
    bob = AgentSession(bob_in.subscriber, BOB, supervisor=True)
    cid = AgentSession(cid_in.subscriber, CID, supervisor=True)
    agents.do_agent_connect(world.engine, bob)
    supervision.watch_board(world.engine, bob)
    visitor, v_in = world.visitor()
    conversation_id = world.start_chat(visitor, v_in)
    # Cid connects between two sweeps: Bob is brought up to date first, so both go on
    # from the same board.
    agents.do_agent_connect(world.engine, cid)
    supervision.watch_board(world.engine, cid)
    caught_up = bob_in.last("supervisor.board_changed")
    assert [c["conversation_id"] for c in caught_up["changed"]["chats"]] == [conversation_id]
    assert [c["conversation_id"] for c in cid_in.last("supervisor.board")["board"]["chats"]] == [
        conversation_id
    ]
    assert supervision.do_push_board(world.engine) is False


def test_board_delta_keys_rows_and_reports_removals() -> None:
    old = {"chats": {"a": {"conversation_id": "a", "state": "waiting"}}, "queues": {}, "agents": {}}
    new = {"chats": {"b": {"conversation_id": "b", "state": "waiting"}}, "queues": {}, "agents": {}}
    assert supervision.board_delta(old, new) == {
        "changed": {"chats": [{"conversation_id": "b", "state": "waiting"}]},
        "removed": {"chats": ["a"]},
    }
    assert supervision.board_delta(new, new) is None


def test_no_board_is_built_without_a_supervisor_online(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    world.agent(ANN)

    def built(engine: object) -> dict[str, object]:
        raise AssertionError("the board was built for nobody")

    monkeypatch.setattr(supervision, "board_rows", built)
    assert supervision.do_push_board(world.engine) is False
