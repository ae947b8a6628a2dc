"""Postpone and wrap-up across two service processes on one real Redis: the timers are
the shared `RedisTimers`, so whichever process sweeps acts on them (docs/scale-out.md)."""

from __future__ import annotations

import uuid
from datetime import timedelta

import redis
from chat_fakes import BOB, FIELDS, SALES, SHOP, FakeDirectory, FakeOutbox, Inbox
from test_chat_dispositions import SALES_CLOSES
from test_chat_engine import SECRET, Clock

from connector.chat.actions import agents, due, postpone, visitors
from connector.chat.engine import ChatEngine
from connector.chat.hub import Hub
from connector.chat.org_sync import OrgSync
from connector.chat.redis_state import DEFAULT_PREFIX, RedisLiveState
from connector.chat.sessions import AgentSession, VisitorSession
from connector.chat.timers import RedisTimers
from connector.chat.tokens import ChatTokens
from connector.crm.directory import TopicRecord

PAGE = {"url": "https://shop.example/p/1", "title": "P1", "referrer": ""}


def process(redis_url: str, clock: Clock, outbox: FakeOutbox) -> ChatEngine:
    """One service process's engine on the shared Redis, its timers there too."""
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    state = RedisLiveState(client)
    process_id = uuid.uuid4().hex
    state.presence_beat(process_id, 600)
    directory = FakeDirectory()
    directory.set_topic(TopicRecord(SALES, "Sales", "#ff0000", SALES_CLOSES))
    return ChatEngine(
        state,
        Hub(),
        directory,
        outbox,
        ChatTokens(SECRET),
        timers=RedisTimers(client, clock=lambda: clock().timestamp()),
        org=OrgSync(client, state, prefix=DEFAULT_PREFIX),
        process_id=process_id,
        clock=clock,
    )


def chat_on(here: ChatEngine, there: ChatEngine) -> tuple[VisitorSession, AgentSession, Inbox, str]:
    """A visitor on `here`, accepted by Bob, whose console is on `there`."""
    bob_in = Inbox()
    bob = AgentSession(bob_in.subscriber, BOB)
    agents.do_agent_connect(there, bob)
    v_in = Inbox()
    visitor = VisitorSession(v_in.subscriber, ip="203.0.113.7")
    visitors.do_visitor_hello(here, visitor, widget_id=SHOP, visitor_id="visitor-0001", page=PAGE)
    visitors.do_visitor_start(here, visitor, client_id="start-1", fields=FIELDS)
    conversation_id = str(v_in.last("chat.started")["conversation_id"])
    agents.do_agent_accept(there, bob, conversation_id=conversation_id)
    return visitor, bob, bob_in, conversation_id


def test_a_chat_postponed_on_one_process_comes_back_by_the_other_ones_sweep(
    redis_url: str,
) -> None:
    clock, outbox = Clock(), FakeOutbox()
    here, there = process(redis_url, clock, outbox), process(redis_url, clock, outbox)
    _, bob, _, conversation_id = chat_on(here, there)
    until = clock() + timedelta(minutes=5)
    postpone.do_agent_postpone(there, bob, conversation_id=conversation_id, until=until)

    clock.advance(301)
    due.run_due_timers(here)  # the other process claims the shared timer
    with there.reading():
        assert there.conversations[conversation_id].postponed_until is None
    assert due.run_due_timers(there) == 0  # claimed once


def test_the_visitor_ends_on_one_process_and_the_agent_closes_the_wrapup_on_the_other(
    redis_url: str,
) -> None:
    clock, outbox = Clock(), FakeOutbox()
    here, there = process(redis_url, clock, outbox), process(redis_url, clock, outbox)
    visitor, bob, _, conversation_id = chat_on(here, there)
    visitors.do_visitor_end(here, visitor)
    visitors.do_visitor_rate(here, visitor, rating=2)
    clock.advance(200)  # past the rating window, within the wrap-up
    assert due.run_due_timers(here) + due.run_due_timers(there) == 0
    assert outbox.items == {}

    agents.do_agent_end(there, bob, conversation_id=conversation_id, disposition="Sold")
    ((_, payload),) = outbox.items.values()
    assert payload["disposition"] == "Sold" and payload["rating"] == 2
    assert outbox.enqueue_calls == 1
