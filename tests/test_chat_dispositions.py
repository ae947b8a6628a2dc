"""Closing a chat with a disposition (issue 11): the topic's list, the engine's refusal,
the socket's error code and the activity's column."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from chat_fakes import ANN, ANN_USER, BOB, FIELDS, SALES, FakeOutbox
from test_chat_engine import World
from test_sockets import Server

from connector.chat.actions import agents, visitors
from connector.chat.errors import ChatDispositionRequired
from connector.crm.chat_activity import FinishedChat, chat_activity_payload
from connector.crm.directory import TopicRecord
from connector.crm.dispositions import MAX_DISPOSITION_CHARS, MAX_DISPOSITIONS, parse_dispositions
from connector.services import services_of

SALES_CLOSES = ("Sold", "Needs a quote", "No interest")


def with_dispositions(world: World) -> World:
    world.directory.set_topic(TopicRecord(SALES, "Sales", "#ff0000", SALES_CLOSES))
    return world


@pytest.fixture
def world(tmp_path: Path) -> World:
    return with_dispositions(World(tmp_path))


def accepted_chat(world: World) -> tuple[str, Any, Any, Any]:
    """A Shop chat Ann accepted: its id, Ann's session and inbox, the visitor's session."""
    ann, ann_in = world.agent(ANN)
    visitor, v_in = world.visitor()
    visitors.do_visitor_start(world.engine, visitor, client_id="s1", fields=FIELDS)
    conversation_id = v_in.last("chat.started")["conversation_id"]
    agents.do_agent_accept(world.engine, ann, conversation_id=conversation_id)
    return conversation_id, ann, ann_in, visitor


def test_the_topic_column_becomes_a_clean_list() -> None:
    text = "Sold\n\n  Needs   a quote \nSold\r\nNo interest\n" + "x" * 300
    assert parse_dispositions(text) == (
        "Sold",
        "Needs a quote",
        "No interest",
        "x" * MAX_DISPOSITION_CHARS,
    )
    assert parse_dispositions(None) == ()
    many = "\n".join(f"Choice {n}" for n in range(200))
    assert len(parse_dispositions(many)) == MAX_DISPOSITIONS


def test_the_agent_sees_the_topics_dispositions_with_the_chat(world: World) -> None:
    _, _, ann_in, _ = accepted_chat(world)
    (topic,) = ann_in.last("chat.accepted")["chat"]["topics"]
    assert topic["dispositions"] == list(SALES_CLOSES)


def test_ending_without_a_disposition_is_refused_and_the_chat_stays_open(world: World) -> None:
    conversation_id, ann, ann_in, _ = accepted_chat(world)
    for wrong in (None, "", "   ", "Sold out"):
        with pytest.raises(ChatDispositionRequired):
            agents.do_agent_end(
                world.engine, ann, conversation_id=conversation_id, disposition=wrong
            )
    assert ann_in.of_type("chat.ended") == []
    assert world.engine.conversations[conversation_id].is_open
    assert world.outbox.items == {}


def test_the_chosen_disposition_is_stored_on_the_chat_activity(world: World) -> None:
    conversation_id, ann, ann_in, visitor = accepted_chat(world)
    agents.do_agent_end(
        world.engine, ann, conversation_id=conversation_id, disposition=" Needs  a quote "
    )
    assert ann_in.last("chat.ended")["conversation_id"] == conversation_id
    # Kept with the conversation while it waits for the rating (a restart reads it back).
    restarted = World(world.folder).engine.state.conversation(conversation_id)
    assert restarted is not None and restarted.disposition == "Needs a quote"
    visitors.do_visitor_rate(world.engine, visitor, rating=4)
    ((_, payload),) = world.outbox.items.values()
    body = chat_activity_payload(FinishedChat.from_dict(payload))
    assert body["crmchat_disposition"] == "Needs a quote"


def test_a_topic_without_dispositions_ends_as_before(tmp_path: Path) -> None:
    world = World(tmp_path)
    conversation_id, ann, ann_in, visitor = accepted_chat(world)
    agents.do_agent_end(world.engine, ann, conversation_id=conversation_id)
    assert ann_in.last("chat.ended")["conversation_id"] == conversation_id
    visitors.do_visitor_rate(world.engine, visitor, rating=5)
    ((_, payload),) = world.outbox.items.values()
    assert "crmchat_disposition" not in chat_activity_payload(FinishedChat.from_dict(payload))


def test_an_agent_to_agent_chat_needs_no_disposition(world: World) -> None:
    ann, ann_in = world.agent(ANN)
    world.agent(BOB)
    agents.do_agent_chat_start(world.engine, ann, agent_id=BOB)
    conversation_id = ann_in.last("chat.accepted")["chat"]["conversation_id"]
    agents.do_agent_end(world.engine, ann, conversation_id=conversation_id)
    assert ann_in.last("chat.ended")["conversation_id"] == conversation_id


# ----- over the socket ------------------------------------------------------------------


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    running = Server(tmp_path, FakeOutbox())
    services_of(running.app).directory.set_topic(
        TopicRecord(SALES, "Sales", "#ff0000", SALES_CLOSES)
    )
    yield running
    running.stop()


def test_the_socket_answers_a_missing_disposition_with_its_code(server: Server) -> None:
    ann = server.agent(ANN_USER)
    visitor = server.visitor()
    visitor.send({"type": "chat.start", "client_id": "s1", "fields": FIELDS})
    conversation_id = visitor.expect("chat.started")["conversation_id"]
    ann.expect("chat.offered")
    ann.send({"type": "chat.accept", "conversation_id": conversation_id})
    ann.expect("chat.accepted")
    ann.send({"type": "chat.end", "conversation_id": conversation_id})
    error = ann.expect("error")
    assert error["code"] == "disposition_required"
    assert "disposition" in error["message"]
    ann.send({"type": "chat.end", "conversation_id": conversation_id, "disposition": "x" * 101})
    assert ann.expect("error")["code"] == "invalid_input"
    ann.send({"type": "chat.end", "conversation_id": conversation_id, "disposition": "Sold"})
    assert ann.expect("chat.ended")["by"] == "agent"
