"""The engine on its live parts: events through the bus it is given, finishes as timers.

These are the seams the Redis set plugs into (docs/scale-out.md): another process's hub
hears the engine through the bus, and another process's sweep could claim its finishes.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from chat_fakes import BOB, FIELDS, SHOP, FakeDirectory, FakeOutbox, Inbox
from test_chat_engine import SECRET, Clock

from connector.chat.actions import agents, finishing, visitors
from connector.chat.bus import LocalBus, attach_hub
from connector.chat.engine import RATING_GRACE_SECS, ChatEngine
from connector.chat.hub import Hub
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

    due = live.timers.next_due()
    assert due is not None
    assert (due - live.clock()).total_seconds() == pytest.approx(RATING_GRACE_SECS)
    live.clock.advance(RATING_GRACE_SECS + 1)
    assert finishing.run_due_finishes(live.engine) == 1
    assert finishing.run_due_finishes(live.engine) == 0
    assert live.outbox.enqueue_calls == 1 and conversation_id in live.outbox.items
    assert live.timers.next_due() is None


def test_a_rated_chat_leaves_no_timer_behind(live: Live) -> None:
    visitor, _, conversation_id = live.chat()
    visitors.do_visitor_end(live.engine, visitor)
    visitors.do_visitor_rate(live.engine, visitor, rating=5)

    assert conversation_id in live.outbox.items
    assert live.timers.claim_due() == []
    assert live.timers.next_due() is None
