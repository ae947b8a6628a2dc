"""The engine on its live parts: events through the bus it is given, finishes as timers.

These are the seams the Redis set plugs into (docs/scale-out.md): another process's hub
hears the engine through the bus, and another process's sweep could claim its finishes.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
import redis
from chat_fakes import BOB, FIELDS, SHOP, FakeDirectory, FakeOutbox, Inbox
from test_chat_engine import SECRET, Clock

from connector.chat import org_sync
from connector.chat.actions import agents, due, visitors
from connector.chat.bus import LocalBus, attach_hub
from connector.chat.engine import RATING_GRACE_SECS, ChatEngine
from connector.chat.hub import Hub
from connector.chat.model import Conversation, ConversationState
from connector.chat.org_sync import OrgSync
from connector.chat.redis_state import DEFAULT_PREFIX, RedisLiveState
from connector.chat.routing import agent_channel
from connector.chat.sessions import AgentSession, VisitorSession
from connector.chat.state import SqliteLiveState
from connector.chat.timers import LocalTimers
from connector.chat.tokens import ChatTokens

PAGE = {"url": "https://shop.example/p/1", "title": "P1", "referrer": ""}


class Live:
    """An engine given its bus and timers, as `open_live` gives them."""

    def __init__(self, folder: Path) -> None:
        self.clock = Clock()
        self.bus = LocalBus()
        self.timers = LocalTimers(clock=lambda: self.clock().timestamp())
        self.outbox = FakeOutbox()
        self.engine = ChatEngine(
            SqliteLiveState(folder / "live.sqlite"),
            Hub(),
            FakeDirectory(),
            self.outbox,
            ChatTokens(SECRET),
            bus=self.bus,
            timers=self.timers,
            clock=self.clock,
        )

    def chat(self) -> tuple[VisitorSession, AgentSession, str]:
        bob = AgentSession(Inbox().subscriber, BOB)
        agents.do_agent_connect(self.engine, bob)
        v_in = Inbox()
        visitor = VisitorSession(v_in.subscriber, ip="203.0.113.7")
        visitors.do_visitor_hello(
            self.engine, visitor, widget_id=SHOP, visitor_id="visitor-0001", page=PAGE
        )
        visitors.do_visitor_start(self.engine, visitor, client_id="start-1", fields=FIELDS)
        conversation_id = str(v_in.last("chat.started")["conversation_id"])
        agents.do_agent_accept(self.engine, bob, conversation_id=conversation_id)
        return visitor, bob, conversation_id


@pytest.fixture
def live(tmp_path: Path) -> Live:
    return Live(tmp_path)


def test_a_visitors_message_reaches_a_socket_on_another_hub_of_the_bus(live: Live) -> None:
    # The other process's hub, with the agent's second console on it.
    elsewhere, console = Hub(), Inbox()
    attach_hub(live.bus, elsewhere)
    elsewhere.subscribe(agent_channel(BOB), console.subscriber)
    visitor, _, conversation_id = live.chat()

    visitors.do_visitor_send(live.engine, visitor, client_id="v1", text="Is it in stock?")
    elsewhere.flush()

    created = console.of_type("message.created")
    assert [m["text"] for m in created][-1] == "Is it in stock?"
    assert created[-1]["conversation_id"] == conversation_id
    assert [m["seq"] for m in created] == sorted(m["seq"] for m in created)


def test_an_ended_chat_is_a_finish_timer_that_the_sweep_claims_once(live: Live) -> None:
    visitor, _, conversation_id = live.chat()
    visitors.do_visitor_end(live.engine, visitor)

    due_at = live.timers.next_due()
    assert due_at is not None
    assert (due_at - live.clock()).total_seconds() == pytest.approx(RATING_GRACE_SECS)
    live.clock.advance(RATING_GRACE_SECS + 1)
    assert due.run_due_timers(live.engine) == 1
    assert due.run_due_timers(live.engine) == 0
    assert live.outbox.enqueue_calls == 1 and conversation_id in live.outbox.items
    assert live.timers.next_due() is None


def test_a_rated_chat_leaves_no_timer_behind(live: Live) -> None:
    visitor, _, conversation_id = live.chat()
    visitors.do_visitor_end(live.engine, visitor)
    visitors.do_visitor_rate(live.engine, visitor, rating=5)

    assert conversation_id in live.outbox.items
    assert live.timers.claim_due() == []
    assert live.timers.next_due() is None


class Reads:
    """Counts the conversations a `RedisLiveState` reads back, by id."""

    def __init__(self, state: RedisLiveState) -> None:
        self.ids: list[str] = []
        original = state.conversation

        def counted(conversation_id: str) -> Conversation | None:
            self.ids.append(conversation_id)
            return original(conversation_id)

        state.conversation = counted  # type: ignore[method-assign]


def _process(redis_url: str, clock: Clock) -> tuple[ChatEngine, RedisLiveState]:
    """One service process's engine on the shared Redis, as `connector.app` builds it."""
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    state = RedisLiveState(client)
    process_id = uuid.uuid4().hex
    state.presence_beat(process_id, 600)  # alive: its sockets count
    engine = ChatEngine(
        state,
        Hub(),
        FakeDirectory(),
        FakeOutbox(),
        ChatTokens(SECRET),
        timers=LocalTimers(clock=lambda: clock().timestamp()),
        org=OrgSync(client, state, prefix=DEFAULT_PREFIX),
        process_id=process_id,
        clock=clock,
    )
    return engine, state


def _open_chats(engine: ChatEngine, count: int) -> list[tuple[VisitorSession, str]]:
    chats = []
    for n in range(count):
        inbox = Inbox()
        visitor = VisitorSession(inbox.subscriber, ip="203.0.113.7")
        visitors.do_visitor_hello(
            engine, visitor, widget_id=SHOP, visitor_id=f"visitor-{n:04d}", page=PAGE
        )
        visitors.do_visitor_start(engine, visitor, client_id=f"start-{n}", fields=FIELDS)
        chats.append((visitor, str(inbox.last("chat.started")["conversation_id"])))
    return chats


def test_a_foreign_change_reloads_only_the_conversation_it_wrote(redis_url: str) -> None:
    clock = Clock()
    here, _ = _process(redis_url, clock)
    there, there_state = _process(redis_url, clock)
    bob = AgentSession(Inbox().subscriber, BOB)
    agents.do_agent_connect(there, bob)
    chats = _open_chats(here, 6)
    with there.reading():  # `there` is now in step with all six chats
        assert len(there.conversations) == 6
    reads = Reads(there_state)

    visitor, conversation_id = chats[2]
    visitors.do_visitor_send(here, visitor, client_id="v1", text="Still there?")
    agents.do_agent_accept(there, bob, conversation_id=conversation_id)

    # One conversation re-read (the one `here` wrote to), not the six that are open.
    assert reads.ids == [conversation_id]
    accepted = there.conversations[conversation_id]
    assert accepted.state is ConversationState.ACTIVE
    # Its copy knew the foreign message: the join line went in after it, not over it.
    texts = [m.text for m in there_state.messages(conversation_id)]
    assert texts[-2:] == ["Still there?", "Bob joined the chat."]
    assert accepted.last_seq == len(texts)


def test_a_process_more_changes_behind_than_the_log_reloads_everything(
    redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(org_sync, "LOG_LENGTH", 3)
    clock = Clock()
    here, _ = _process(redis_url, clock)
    there, there_state = _process(redis_url, clock)
    bob = AgentSession(Inbox().subscriber, BOB)
    agents.do_agent_connect(there, bob)
    reads = Reads(there_state)

    chats = _open_chats(here, 3)  # six changes, more than the log keeps

    with there.reading():
        assert sorted(there.conversations) == sorted(c for _, c in chats)
    assert sorted(reads.ids) == sorted(c for _, c in chats)


def test_a_dead_process_makes_every_copy_reload_its_counts(redis_url: str) -> None:
    clock = Clock()
    here, _ = _process(redis_url, clock)
    there, there_state = _process(redis_url, clock)
    agents.do_agent_connect(there, AgentSession(Inbox().subscriber, BOB))
    _open_chats(here, 2)
    with there.reading():
        pass
    reads = Reads(there_state)

    here.process_died("a process that stopped beating")
    with there.reading():
        pass

    assert len(reads.ids) == 2  # the whole working copy, as after any unknown change
