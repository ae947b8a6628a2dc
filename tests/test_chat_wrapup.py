"""Wrap-up (issue 11): a chat the visitor ended waits for its agent's disposition, and its
activity is written once, with it, or without it once the wrap-up's time ran out."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from chat_fakes import ANN, ANN_USER, FIELDS, SALES, FakeOutbox
from test_chat_dispositions import SALES_CLOSES, accepted_chat, with_dispositions
from test_chat_engine import World
from test_sockets import Server

from connector.chat.actions import agents, due, finishing, visitors
from connector.chat.errors import ChatDispositionRequired
from connector.crm.chat_activity import FinishedChat, chat_activity_payload
from connector.crm.directory import DEFAULT_WRAPUP_SECS, TopicRecord
from connector.services import services_of


@pytest.fixture
def world(tmp_path: Path) -> World:
    return with_dispositions(World(tmp_path))


def written(world: World) -> dict[str, Any]:
    ((_, payload),) = world.outbox.items.values()
    return chat_activity_payload(FinishedChat.from_dict(payload))


def test_the_visitor_ends_the_agent_picks_the_disposition_and_it_is_written_with_it(
    world: World,
) -> None:
    conversation_id, ann, ann_in, visitor = accepted_chat(world)
    visitors.do_visitor_end(world.engine, visitor)
    chat = ann_in.last("chat.updated")["chat"]
    assert chat["state"] == "ended"
    assert chat["wrapup_until"] == "2026-11-21T10:05:00Z"  # DEFAULT_WRAPUP_SECS after the end
    # The visitor rates: nothing is written while the agent still chooses.
    visitors.do_visitor_rate(world.engine, visitor, rating=5)
    assert world.outbox.items == {}
    with pytest.raises(ChatDispositionRequired):
        agents.do_agent_end(world.engine, ann, conversation_id=conversation_id)
    assert world.outbox.items == {}

    agents.do_agent_end(world.engine, ann, conversation_id=conversation_id, disposition="Sold")
    closed = ann_in.last("chat.updated")["chat"]
    assert closed["wrapup_until"] is None and closed["disposition"] == "Sold"
    body = written(world)
    assert body["crmchat_disposition"] == "Sold" and body["crmchat_rating"] == 5
    assert world.outbox.enqueue_calls == 1
    # Later sweeps write nothing more.
    world.clock.advance(3600)
    assert due.run_due_timers(world.engine) == 0
    assert world.outbox.enqueue_calls == 1


def test_a_disposition_before_the_rating_waits_for_the_rating_window(world: World) -> None:
    conversation_id, ann, _, visitor = accepted_chat(world)
    visitors.do_visitor_end(world.engine, visitor)
    agents.do_agent_end(world.engine, ann, conversation_id=conversation_id, disposition="Sold")
    assert world.outbox.items == {}  # the visitor may still rate
    visitors.do_visitor_rate(world.engine, visitor, rating=3)
    body = written(world)
    assert body["crmchat_disposition"] == "Sold" and body["crmchat_rating"] == 3


def test_the_wrapup_closes_without_a_disposition_after_its_time_limit(world: World) -> None:
    conversation_id, _, ann_in, visitor = accepted_chat(world)
    visitors.do_visitor_end(world.engine, visitor)
    world.clock.advance(DEFAULT_WRAPUP_SECS - 1)
    due.run_due_timers(world.engine)
    assert world.outbox.items == {}  # the rating window (120 s) is over; the wrap-up not
    world.clock.advance(2)
    assert due.run_due_timers(world.engine) == 1
    assert "crmchat_disposition" not in written(world)
    assert ann_in.last("chat.updated")["chat"]["wrapup_until"] is None


def test_the_wrapup_survives_a_restart(tmp_path: Path) -> None:
    first = with_dispositions(World(tmp_path))
    conversation_id, _, _, visitor = accepted_chat(first)
    visitors.do_visitor_end(first.engine, visitor)
    first.state.close()

    second = with_dispositions(World(tmp_path, outbox=first.outbox))
    ann, ann_in = second.agent(ANN)
    (chat,) = ann_in.last("snapshot")["chats"]  # still the agent's, to close
    assert chat["conversation_id"] == conversation_id and chat["wrapup_until"]
    second.clock.advance(200)  # past the rating window
    assert due.run_due_timers(second.engine) == 0
    agents.do_agent_end(second.engine, ann, conversation_id=conversation_id, disposition="Sold")
    assert written(second)["crmchat_disposition"] == "Sold"


def test_the_time_limit_fires_after_a_restart_too(tmp_path: Path) -> None:
    first = with_dispositions(World(tmp_path))
    _, _, _, visitor = accepted_chat(first)
    visitors.do_visitor_end(first.engine, visitor)
    first.state.close()
    second = with_dispositions(World(tmp_path, outbox=first.outbox))
    second.clock.advance(DEFAULT_WRAPUP_SECS + 1)
    assert due.run_due_timers(second.engine) == 1
    assert "crmchat_disposition" not in written(second)


def test_a_chat_the_agent_ends_or_without_a_list_has_no_wrapup(tmp_path: Path) -> None:
    world = with_dispositions(World(tmp_path / "a"))
    conversation_id, ann, ann_in, visitor = accepted_chat(world)
    agents.do_agent_end(world.engine, ann, conversation_id=conversation_id, disposition="Sold")
    assert all(f["chat"]["wrapup_until"] is None for f in ann_in.of_type("chat.updated"))

    plain = World(tmp_path / "b")  # the topic asks for no disposition
    conversation_id, _, ann_in, visitor = accepted_chat(plain)
    visitors.do_visitor_end(plain.engine, visitor)
    visitors.do_visitor_rate(plain.engine, visitor, rating=4)
    assert conversation_id in plain.outbox.items


def test_over_the_socket_the_wrapup_is_closed_by_chat_end(tmp_path: Path) -> None:
    server = Server(tmp_path, FakeOutbox())
    try:
        services_of(server.app).directory.set_topic(
            TopicRecord(SALES, "Sales", "#ff0000", SALES_CLOSES)
        )
        ann = server.agent(ANN_USER)
        visitor = server.visitor()
        visitor.send({"type": "chat.start", "client_id": "s1", "fields": FIELDS})
        conversation_id = visitor.expect("chat.started")["conversation_id"]
        ann.expect("chat.offered")
        ann.send({"type": "chat.accept", "conversation_id": conversation_id})
        ann.expect("chat.accepted")
        visitor.send({"type": "chat.end"})
        assert ann.expect("chat.ended")["by"] == "visitor"
        assert ann.expect("chat.updated")["chat"]["wrapup_until"] is not None
        ann.send({"type": "chat.end", "conversation_id": conversation_id})
        assert ann.expect("error")["code"] == "disposition_required"
        ann.send({"type": "chat.end", "conversation_id": conversation_id, "disposition": "Sold"})
        closed = ann.expect("chat.updated")["chat"]
        assert closed["wrapup_until"] is None and closed["disposition"] == "Sold"
        # Closed: a second one is refused.
        ann.send({"type": "chat.end", "conversation_id": conversation_id, "disposition": "Sold"})
        assert ann.expect("error")["code"] == "chat_ended"
    finally:
        server.stop()


def test_a_chat_closed_after_the_visitor_left_goes_into_wrapup_too(world: World) -> None:
    conversation_id, ann, ann_in, visitor = accepted_chat(world)
    visitors.do_visitor_disconnect(world.engine, visitor)
    world.clock.advance(301)  # the widget's inactive_close_secs (300 by default)
    assert finishing.run_timeouts(world.engine) == 1
    assert ann_in.last("chat.ended")["by"] == "visitor"
    assert ann_in.last("chat.updated")["chat"]["wrapup_until"] is not None
    assert world.outbox.items == {}  # nobody rates it, yet it waits for the disposition
    agents.do_agent_end(world.engine, ann, conversation_id=conversation_id, disposition="Sold")
    assert written(world)["crmchat_disposition"] == "Sold"


def test_the_topics_own_time_limit_closes_the_wrapup(tmp_path: Path) -> None:
    world = World(tmp_path)
    world.directory.set_topic(TopicRecord(SALES, "Sales", "#ff0000", SALES_CLOSES, 30, 60))
    _, _, ann_in, visitor = accepted_chat(world)
    visitors.do_visitor_end(world.engine, visitor)
    assert ann_in.last("chat.updated")["chat"]["wrapup_until"] == "2026-11-21T10:01:00Z"
    visitors.do_visitor_rate(world.engine, visitor, rating=5)
    world.clock.advance(61)
    assert due.run_due_timers(world.engine) == 1
    assert "crmchat_disposition" not in written(world)


def _ann_with_one_place(world: World) -> None:
    profile = world.directory.agent(ANN)
    assert profile is not None
    world.directory.set_agent(replace(profile, capacity=1))


def _second_chat(world: World) -> tuple[str, Any]:
    world.clock.advance(1)
    visitor, v_in = world.visitor("visitor-0002")
    visitors.do_visitor_start(world.engine, visitor, client_id="s2", fields=FIELDS)
    return str(v_in.last("chat.started")["conversation_id"]), v_in


def _offered(inbox: Any) -> list[str]:
    return [f["chat"]["conversation_id"] for f in inbox.of_type("chat.offered")]


def test_a_chat_in_wrapup_holds_its_agents_place_until_it_is_closed(world: World) -> None:
    # Capacity 1 and Sales' default: the wrap-up blocks capacity (Omnichannel's default).
    _ann_with_one_place(world)
    first, ann, ann_in, visitor = accepted_chat(world)
    visitors.do_visitor_end(world.engine, visitor)
    assert ann_in.last("chat.updated")["chat"]["wrapup_until"] is not None
    second, second_in = _second_chat(world)
    # Ann still works on the first chat: the second waits in the queue.
    assert _offered(ann_in) == [first]
    assert second_in.last("chat.queued")["position"] == 1
    agents.do_agent_end(world.engine, ann, conversation_id=first, disposition="Sold")
    # Closed: her place frees and the second chat rings for her.
    assert _offered(ann_in) == [first, second]


def test_the_wrapups_time_limit_frees_the_place_too(world: World) -> None:
    _ann_with_one_place(world)
    first, _, ann_in, visitor = accepted_chat(world)
    visitors.do_visitor_end(world.engine, visitor)
    second, _ = _second_chat(world)
    assert _offered(ann_in) == [first]
    world.clock.advance(DEFAULT_WRAPUP_SECS)
    due.run_due_timers(world.engine)
    assert _offered(ann_in) == [first, second]


def test_a_topic_that_does_not_block_lets_the_next_chat_ring_during_wrapup(
    tmp_path: Path,
) -> None:
    world = World(tmp_path)
    world.directory.set_topic(
        TopicRecord(SALES, "Sales", "#ff0000", SALES_CLOSES, block_wrapup=False)
    )
    _ann_with_one_place(world)
    first, _, ann_in, visitor = accepted_chat(world)
    visitors.do_visitor_end(world.engine, visitor)
    assert ann_in.last("chat.updated")["chat"]["wrapup_until"] is not None
    second, _ = _second_chat(world)
    assert _offered(ann_in) == [first, second]
