"""The chat engine without sockets: real Hub and SQLite state, fake Directory and Outbox."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from chat_fakes import (
    ANN,
    BOB,
    CID,
    FIELDS,
    HELP,
    SALES,
    SHOP,
    FakeDirectory,
    FakeOutbox,
    Inbox,
)

from connector.chat.actions import agents, conversations, due, visitors
from connector.chat.engine import ChatEngine
from connector.chat.errors import ChatConflict, ChatEnded, ChatInvalid, ChatUnavailable
from connector.chat.finish import CHAT_ACTIVITY_KIND
from connector.chat.hub import Hub
from connector.chat.model import AgentStatus
from connector.chat.sessions import AgentSession, VisitorSession
from connector.chat.state import SqliteLiveState
from connector.chat.tokens import ChatTokens

SECRET = b"test-secret"


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 11, 21, 10, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, secs: float) -> None:
        self.now += timedelta(seconds=secs)


class World:
    """An engine over `folder`, and helpers to connect visitors and agents to it."""

    def __init__(self, folder: Path, *, outbox: FakeOutbox | None = None, rating: bool = True):
        self.folder = folder
        self.clock = Clock()
        self.directory = FakeDirectory(rating=rating)
        self.outbox = outbox or FakeOutbox()
        self.state = SqliteLiveState(folder / "live.sqlite")
        self.engine = ChatEngine(
            self.state, Hub(), self.directory, self.outbox, ChatTokens(SECRET), clock=self.clock
        )

    def agent(self, agent_id: str) -> tuple[AgentSession, Inbox]:
        inbox = Inbox()
        session = AgentSession(inbox.subscriber, agent_id)
        agents.do_agent_connect(self.engine, session)
        return session, inbox

    def visitor(
        self,
        visitor_id: str = "visitor-0001",
        widget_id: str = SHOP,
        *,
        token: str | None = None,
        since_seq: int = 0,
    ) -> tuple[VisitorSession, Inbox]:
        inbox = Inbox()
        session = VisitorSession(inbox.subscriber, ip="203.0.113.7")
        visitors.do_visitor_hello(
            self.engine,
            session,
            widget_id=widget_id,
            visitor_id=visitor_id,
            page={"url": "https://shop.example/p/1", "title": "P1", "referrer": ""},
            resume_token=token,
            since_seq=since_seq,
        )
        return session, inbox

    def start_chat(self, session: VisitorSession, inbox: Inbox) -> str:
        visitors.do_visitor_start(self.engine, session, client_id="start-1", fields=FIELDS)
        return str(inbox.last("chat.started")["conversation_id"])


@pytest.fixture
def world(tmp_path: Path) -> World:
    return World(tmp_path)


def test_a_chat_is_offered_only_to_matching_available_agents(world: World) -> None:
    _, ann_in = world.agent(ANN)
    _, bob_in = world.agent(BOB)
    _, cid_in = world.agent(CID)  # Support only: never sees a Shop (Sales) chat
    visitor, v_in = world.visitor()
    assert v_in.last("hello.ok")["available"] is True

    conversation_id = world.start_chat(visitor, v_in)

    # Both Sales agents may pick it up (Waiting chats); it rings for one at a time: of two
    # never offered a chat, the first by id (actions/queues.py).
    for inbox in (ann_in, bob_in):
        chat = inbox.last("chat.waiting")["chat"]
        assert chat["conversation_id"] == conversation_id
        assert chat["visitor"]["name"] == "Vera Visitor"
        assert chat["topics"] == [
            {"id": chat["topics"][0]["id"], "name": "Sales", "color": "#ff0000", "dispositions": []}
        ]
    assert ann_in.last("chat.offered")["chat"]["conversation_id"] == conversation_id
    assert bob_in.of_type("chat.offered") == []
    assert cid_in.of_type("chat.offered") == [] and cid_in.of_type("chat.waiting") == []
    assert all(f.get("visitor", {}).get("widget_id") != SHOP for f in cid_in)


def test_first_accept_wins_and_the_offer_disappears_for_the_others(world: World) -> None:
    ann, ann_in = world.agent(ANN)
    bob, bob_in = world.agent(BOB)
    visitor, v_in = world.visitor()
    conversation_id = world.start_chat(visitor, v_in)

    agents.do_agent_accept(world.engine, bob, conversation_id=conversation_id)
    with pytest.raises(ChatConflict):
        agents.do_agent_accept(world.engine, ann, conversation_id=conversation_id)

    assert bob_in.last("chat.accepted")["chat"]["state"] == "active"
    assert ann_in.last("chat.withdrawn")["conversation_id"] == conversation_id
    assert bob_in.of_type("chat.withdrawn") == []
    assert v_in.last("chat.accepted")["agent"]["name"] == "Bob"
    assert v_in.last("message.created")["text"] == "Bob joined the chat."


def test_messages_flow_both_ways_with_snippets_expanded(world: World) -> None:
    bob, bob_in = world.agent(BOB)
    visitor, v_in = world.visitor()
    conversation_id = world.start_chat(visitor, v_in)
    agents.do_agent_accept(world.engine, bob, conversation_id=conversation_id)

    visitors.do_visitor_send(world.engine, visitor, client_id="v1", text="Hi, is this in stock?")
    agents.do_agent_send(
        world.engine,
        bob,
        conversation_id=conversation_id,
        client_id="a1",
        text="#HELLO# Yes. #nosuch#",
    )

    to_agent = bob_in.of_type("message.created")
    assert [m["text"] for m in to_agent][-2:] == [
        "Hi, is this in stock?",
        "Hello! How can I help you today? Yes. #nosuch#",
    ]
    to_visitor = v_in.of_type("message.created")
    assert to_visitor[-1]["text"] == "Hello! How can I help you today? Yes. #nosuch#"
    assert to_visitor[-1]["sender"] == {"kind": "agent", "name": "Bob"}
    seqs = [m["seq"] for m in to_visitor]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)


def test_a_resent_message_is_stored_once(world: World) -> None:
    bob, bob_in = world.agent(BOB)
    visitor, v_in = world.visitor()
    conversation_id = world.start_chat(visitor, v_in)
    agents.do_agent_accept(world.engine, bob, conversation_id=conversation_id)

    visitors.do_visitor_send(world.engine, visitor, client_id="same", text="Hello?")
    visitors.do_visitor_send(world.engine, visitor, client_id="same", text="Hello?")

    stored = [m for m in world.state.messages(conversation_id) if m.client_id == "same"]
    assert len(stored) == 1
    echoes = [m for m in v_in.of_type("message.created") if m["client_id"] == "same"]
    assert len(echoes) == 2 and echoes[0]["seq"] == echoes[1]["seq"]
    assert len([m for m in bob_in.of_type("message.created") if m["client_id"] == "same"]) == 1


def test_waiting_time_runs_from_the_unanswered_visitor_message(world: World) -> None:
    bob, bob_in = world.agent(BOB)
    visitor, v_in = world.visitor()
    conversation_id = world.start_chat(visitor, v_in)
    agents.do_agent_accept(world.engine, bob, conversation_id=conversation_id)
    agents.do_agent_send(
        world.engine, bob, conversation_id=conversation_id, client_id="a0", text="Hi"
    )
    world.clock.advance(60)
    visitors.do_visitor_send(world.engine, visitor, client_id="v1", text="one")
    world.clock.advance(30)
    visitors.do_visitor_send(world.engine, visitor, client_id="v2", text="two")

    conversation = conversations.access_agent_chat(world.engine, BOB, conversation_id)
    assert conversation.waiting_since == datetime(2026, 11, 21, 10, 1, tzinfo=UTC)
    assert conversation.last_visitor_message_at == datetime(2026, 11, 21, 10, 1, 30, tzinfo=UTC)
    agents.do_agent_send(
        world.engine, bob, conversation_id=conversation_id, client_id="a1", text="ok"
    )
    assert conversations.access_agent_chat(world.engine, BOB, conversation_id).waiting_since is None


def test_a_restart_loses_nothing_and_a_visitor_resumes_from_its_last_seq(tmp_path: Path) -> None:
    first = World(tmp_path)
    bob, _ = first.agent(BOB)
    visitor, v_in = first.visitor()
    conversation_id = first.start_chat(visitor, v_in)
    token = v_in.last("chat.started")["token"]
    agents.do_agent_accept(first.engine, bob, conversation_id=conversation_id)
    visitors.do_visitor_send(first.engine, visitor, client_id="v1", text="before restart")
    seen = max(m["seq"] for m in v_in.of_type("message.created"))
    agents.do_agent_send(
        first.engine, bob, conversation_id=conversation_id, client_id="a1", text="missed"
    )
    first.state.close()

    second = World(tmp_path, outbox=first.outbox)
    _, bob_in = second.agent(BOB)
    assert [c["conversation_id"] for c in bob_in.last("snapshot")["chats"]] == [conversation_id]
    visitor2, v2_in = second.visitor(token=token, since_seq=seen)
    chat = v2_in.last("hello.ok")["chat"]
    assert chat["state"] == "active"
    assert [m["text"] for m in chat["messages"]] == ["missed"]

    visitors.do_visitor_send(second.engine, visitor2, client_id="v1", text="before restart")
    visitors.do_visitor_send(second.engine, visitor2, client_id="v2", text="after restart")
    texts = [m.text for m in second.state.messages(conversation_id)]
    assert texts.count("before restart") == 1 and texts[-1] == "after restart"
    assert [m.seq for m in second.state.messages(conversation_id)] == list(range(1, len(texts) + 1))


def test_a_forged_resume_token_resumes_nothing(world: World) -> None:
    visitor, v_in = world.visitor()
    world.agent(ANN)
    world.start_chat(visitor, v_in)
    token = v_in.last("chat.started")["token"]

    _, other_in = world.visitor("visitor-other", token=token)  # someone else's token
    assert other_in.last("hello.ok")["chat"] is None
    _, forged_in = world.visitor(token=token[:-2] + "xx")
    assert forged_in.last("hello.ok")["chat"] is None


def test_invite_adds_an_agent_and_transfer_hands_the_chat_over(world: World) -> None:
    ann, ann_in = world.agent(ANN)
    bob, bob_in = world.agent(BOB)
    _, cid_in = world.agent(CID)
    visitor, v_in = world.visitor()
    conversation_id = world.start_chat(visitor, v_in)
    agents.do_agent_accept(world.engine, ann, conversation_id=conversation_id)

    with pytest.raises(Exception, match="does not serve"):
        agents.do_agent_invite(world.engine, ann, conversation_id=conversation_id, agent_id=CID)
    agents.do_agent_invite(world.engine, ann, conversation_id=conversation_id, agent_id=BOB)
    assert bob_in.last("chat.accepted")["chat"]["conversation_id"] == conversation_id
    names = [p["name"] for p in ann_in.last("chat.updated")["chat"]["participants"]]
    assert names == ["Ann", "Bob"]
    visitors.do_visitor_send(world.engine, visitor, client_id="v1", text="to both")
    assert ann_in.last("message.created")["text"] == "to both"
    assert bob_in.last("message.created")["text"] == "to both"
    assert cid_in.of_type("message.created") == []

    agents.do_agent_transfer(world.engine, ann, conversation_id=conversation_id, agent_id=BOB)
    assert ann_in.last("chat.withdrawn")["conversation_id"] == conversation_id
    assert v_in.last("chat.accepted")["agent"]["name"] == "Bob"
    ann_in.clear()
    visitors.do_visitor_send(world.engine, visitor, client_id="v2", text="only Bob now")
    assert bob_in.last("message.created")["text"] == "only Bob now"
    assert ann_in.of_type("message.created") == []
    assert conversations.access_agent_chat(world.engine, BOB, conversation_id).owner_agent_id == BOB


def test_agents_chat_with_each_other(world: World) -> None:
    ann, ann_in = world.agent(ANN)
    _, cid_in = world.agent(CID)
    agents.do_agent_chat_start(world.engine, ann, agent_id=CID)
    chat = cid_in.last("chat.accepted")["chat"]
    assert chat["kind"] == "agent" and ann_in.last("chat.accepted")["chat"] == chat
    agents.do_agent_send(
        world.engine, ann, conversation_id=chat["conversation_id"], client_id="x1", text="coffee?"
    )
    assert cid_in.last("message.created")["text"] == "coffee?"
    agents.do_agent_end(world.engine, ann, conversation_id=chat["conversation_id"])
    assert cid_in.last("chat.ended")["by"] == "agent"
    assert world.outbox.items == {}  # agent chats are not written to CRM


def test_the_activity_waits_for_the_rating(world: World) -> None:
    bob, _ = world.agent(BOB)
    visitor, v_in = world.visitor()
    conversation_id = world.start_chat(visitor, v_in)
    agents.do_agent_accept(world.engine, bob, conversation_id=conversation_id)
    visitors.do_visitor_send(world.engine, visitor, client_id="v1", text="thanks")
    agents.do_agent_end(world.engine, bob, conversation_id=conversation_id)
    assert v_in.last("chat.ended")["by"] == "agent"
    assert world.outbox.items == {}

    visitors.do_visitor_rate(world.engine, visitor, rating=5)

    kind, payload = world.outbox.items[conversation_id]
    assert kind == CHAT_ACTIVITY_KIND
    assert payload["rating"] == 5
    assert payload["owner_user_id"] == world.directory.agent(BOB).user_id  # type: ignore[union-attr]
    assert payload["topic_names"] == ["Sales"]
    # Report figures: the widget's only topic and the accepting agent.
    assert payload["topic_id"] == SALES and payload["agent_id"] == BOB
    assert payload["accepted_at"] is not None
    assert [t["text"] for t in payload["transcript"] if t["sender"]["kind"] == "visitor"] == [
        "thanks"
    ]
    assert payload["ip"] == "203.0.113.7"
    with pytest.raises(ChatEnded):
        visitors.do_visitor_rate(world.engine, visitor, rating=1)
    assert world.outbox.enqueue_calls == 1


def test_without_a_rating_the_activity_is_written_after_the_grace_period(world: World) -> None:
    bob, _ = world.agent(BOB)
    visitor, v_in = world.visitor()
    conversation_id = world.start_chat(visitor, v_in)
    agents.do_agent_accept(world.engine, bob, conversation_id=conversation_id)
    visitors.do_visitor_end(world.engine, visitor)

    world.clock.advance(60)
    assert due.run_due_timers(world.engine) == 0
    world.clock.advance(61)
    assert due.run_due_timers(world.engine) == 1
    assert world.outbox.items[conversation_id][1]["rating"] is None


def test_a_visitor_who_leaves_after_the_end_is_written_soon(world: World) -> None:
    bob, _ = world.agent(BOB)
    visitor, v_in = world.visitor()
    conversation_id = world.start_chat(visitor, v_in)
    agents.do_agent_accept(world.engine, bob, conversation_id=conversation_id)
    agents.do_agent_end(world.engine, bob, conversation_id=conversation_id)
    visitors.do_visitor_disconnect(world.engine, visitor)

    world.clock.advance(16)
    assert due.run_due_timers(world.engine) == 1
    assert conversation_id in world.outbox.items


def test_the_pending_activity_survives_a_restart(tmp_path: Path) -> None:
    first = World(tmp_path)
    bob, _ = first.agent(BOB)
    visitor, v_in = first.visitor()
    conversation_id = first.start_chat(visitor, v_in)
    agents.do_agent_accept(first.engine, bob, conversation_id=conversation_id)
    agents.do_agent_end(first.engine, bob, conversation_id=conversation_id)
    first.state.close()

    second = World(tmp_path, outbox=first.outbox)
    second.clock.advance(121)
    assert due.run_due_timers(second.engine) == 1
    assert conversation_id in second.outbox.items


def test_no_rating_asked_means_the_activity_is_written_at_the_end(tmp_path: Path) -> None:
    world = World(tmp_path, rating=False)
    bob, _ = world.agent(BOB)
    visitor, v_in = world.visitor()
    conversation_id = world.start_chat(visitor, v_in)
    agents.do_agent_accept(world.engine, bob, conversation_id=conversation_id)
    visitors.do_visitor_end(world.engine, visitor)
    assert conversation_id in world.outbox.items


def test_availability_follows_the_agents(world: World) -> None:
    _, v_in = world.visitor(widget_id=HELP)
    assert v_in.last("hello.ok")["available"] is False
    visitor, _ = world.visitor("visitor-0002", widget_id=HELP)
    with pytest.raises(ChatUnavailable):
        visitors.do_visitor_start(world.engine, visitor, client_id="s", fields=FIELDS)

    cid, _ = world.agent(CID)
    assert v_in.last("availability") == {"type": "availability", "available": True}
    agents.do_agent_set_status(world.engine, cid, status=AgentStatus.AWAY)
    assert v_in.last("availability") == {"type": "availability", "available": False}
    agents.do_agent_set_status(world.engine, cid, status=AgentStatus.AVAILABLE)
    agents.do_agent_disconnect(world.engine, cid)
    assert v_in.last("availability")["available"] is False


def test_a_busy_agent_loses_the_offer_to_the_next_agent_and_may_still_pick_it_up(
    world: World,
) -> None:
    ann, ann_in = world.agent(ANN)
    bob, bob_in = world.agent(BOB)
    visitor, v_in = world.visitor()
    conversation_id = world.start_chat(visitor, v_in)
    assert ann_in.last("chat.offered")["chat"]["conversation_id"] == conversation_id
    agents.do_agent_set_status(world.engine, ann, status=AgentStatus.BUSY)
    assert ann_in.last("chat.unoffered")["conversation_id"] == conversation_id
    assert bob_in.last("chat.offered")["chat"]["conversation_id"] == conversation_id
    agents.do_flush_presence(world.engine)
    assert ann_in.last("agents.updated")["agents"][0]["status"] == "busy"
    # Back to Available: the chat rings for Bob now; Ann still lists it and may take it.
    agents.do_agent_set_status(world.engine, ann, status=AgentStatus.AVAILABLE)
    assert len(ann_in.of_type("chat.offered")) == 1
    _, ann_again = world.agent(ANN)
    snapshot = ann_again.last("snapshot")
    assert snapshot["incoming"] == []
    assert [c["conversation_id"] for c in snapshot["waiting"]] == [conversation_id]
    agents.do_agent_accept(world.engine, ann, conversation_id=conversation_id)
    assert bob_in.last("chat.withdrawn")["conversation_id"] == conversation_id


def test_the_agent_sees_the_visitor_leave_and_the_history(world: World) -> None:
    bob, bob_in = world.agent(BOB)
    visitor, v_in = world.visitor()
    first_id = world.start_chat(visitor, v_in)
    agents.do_agent_accept(world.engine, bob, conversation_id=first_id)
    visitors.do_visitor_send(world.engine, visitor, client_id="v1", text="first chat")
    visitors.do_visitor_end(world.engine, visitor)
    visitors.do_visitor_rate(world.engine, visitor, rating=4)

    visitor2, v2_in = world.visitor()
    visitors.do_visitor_start(world.engine, visitor2, client_id="start-2", fields=FIELDS)
    second_id = v2_in.last("chat.started")["conversation_id"]
    offered = bob_in.last("chat.offered")["chat"]
    assert offered["conversation_id"] == second_id
    assert [h["conversation_id"] for h in offered["history"]] == [first_id]
    assert offered["history"][0]["agent"] == "Bob"

    agents.do_agent_accept(world.engine, bob, conversation_id=second_id)
    visitors.do_visitor_disconnect(world.engine, visitor2)
    visitors.do_visitor_disconnect(world.engine, visitor)
    assert bob_in.last("chat.updated")["chat"]["visitor"]["connected"] is False
    assert bob_in.last("visitor.updated")["visitor"]["connected"] is False


def test_visitors_show_to_agents_of_their_widget_only(world: World) -> None:
    _, ann_in = world.agent(ANN)
    _, cid_in = world.agent(CID)
    visitor, _ = world.visitor()
    assert ann_in.last("visitor.updated")["visitor"]["ip"] == "203.0.113.7"
    assert cid_in.of_type("visitor.updated") == []
    visitors.do_visitor_disconnect(world.engine, visitor)
    assert ann_in.last("visitor.left")["visitor_id"] == "visitor-0001"


def test_required_pre_chat_fields_are_enforced(world: World) -> None:
    world.agent(ANN)
    visitor, _ = world.visitor()
    with pytest.raises(ChatInvalid, match="First name"):
        visitors.do_visitor_start(world.engine, visitor, client_id="s", fields={"email": "a@b.c"})
