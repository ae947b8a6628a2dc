"""`RedisLiveState` keeps the `LiveState` contract of `SqliteLiveState` on a real Redis,
and a Redis restart with persistence on loses nothing it acknowledged."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest
import redis
from live_workers import draft
from test_chat_state import T0, add, conversation

from connector.chat.bus import RedisBus, bus_body
from connector.chat.model import AgentStatus, ConversationState, SenderKind, VisitorPresence
from connector.chat.redis_state import RedisLiveState
from connector.chat.state import DuplicateMessage
from connector.redis_server import RedisServer

SYSTEM = SenderKind.SYSTEM


@pytest.fixture
def state(redis_url: str) -> Iterator[RedisLiveState]:
    live = RedisLiveState.from_url(redis_url, prefix="t:")
    yield live
    live.close()


def test_messages_keep_their_order_and_resync_returns_what_came_after(
    state: RedisLiveState,
) -> None:
    c = conversation()
    state.save_conversation(c)
    for n in range(1, 6):
        add(state, c, f"m{n}", f"text {n}")  # type: ignore[arg-type]
    assert [m.seq for m in state.messages("c1")] == [1, 2, 3, 4, 5]
    assert [m.text for m in state.messages("c1", since_seq=3)] == ["text 4", "text 5"]
    assert [m.seq for m in state.messages("c1", since_seq=3)] == [4, 5]
    assert state.messages("c1", since_seq=5) == []
    found = state.message_by_client_id("c1", "m2")
    assert found is not None and found.text == "text 2" and found.seq == 2
    assert state.message_by_client_id("c1", "zz") is None


def test_a_client_id_or_seq_is_stored_once_per_conversation(state: RedisLiveState) -> None:
    c = conversation()
    state.save_conversation(c)
    add(state, c, "same", "one")  # type: ignore[arg-type]
    with pytest.raises(DuplicateMessage):
        add(state, c, "same", "two")  # type: ignore[arg-type]
    c.last_seq = 0  # a second writer that still thinks seq 1 is free
    with pytest.raises(DuplicateMessage):
        add(state, c, "other", "three")  # type: ignore[arg-type]
    assert [m.text for m in state.messages("c1")] == ["one"]
    loaded = state.conversation("c1")
    assert loaded is not None and loaded.last_seq == 1


def test_a_conversation_loads_as_it_was_saved(state: RedisLiveState) -> None:
    c = conversation()
    c.regarding = {"table": "lead", "id": "l1", "name": "Vera"}
    c.labels = ["vip"]
    state.save_conversation(c)
    add(state, c, "m1", "hello")  # type: ignore[arg-type]
    restored = state.conversation("c1")
    assert restored is not None
    assert restored.last_visitor_message_at == T0 + timedelta(seconds=1)
    c.last_visitor_message_at, c.waiting_since = restored.last_visitor_message_at, T0
    assert restored == c
    assert [x.conversation_id for x in state.unfinished_conversations()] == ["c1"]
    assert state.conversation("nope") is None


def test_visitors_and_agent_statuses_are_shared(state: RedisLiveState, redis_url: str) -> None:
    state.save_agent_status("a1", AgentStatus.BUSY)
    state.save_visitor(
        VisitorPresence(
            "v1", "w1", T0, T0, name="Vera", ip="10.0.0.1", page={"url": "https://x.org"}
        )
    )
    other = RedisLiveState.from_url(redis_url, prefix="t:")
    assert other.agent_statuses() == {"a1": AgentStatus.BUSY}
    visitor = other.visitor("v1")
    assert visitor is not None and visitor.ip == "10.0.0.1" and visitor.first_seen == T0
    assert other.visitor("v2") is None
    # Another deployment on the same Redis (another prefix) sees none of it.
    assert RedisLiveState.from_url(redis_url, prefix="u:").agent_statuses() == {}
    other.close()


def test_history_lists_the_visitors_ended_chats_newest_first(state: RedisLiveState) -> None:
    for n in range(3):
        c = conversation(f"c{n}")
        c.started_at = T0 + timedelta(days=n)
        c.state = ConversationState.ENDED
        c.ended_at = c.started_at + timedelta(minutes=5)
        c.finished = True
        state.save_conversation(c)
        add(state, c, "m", "x")  # type: ignore[arg-type]
        state.append_message(draft(c.conversation_id, "v2", "a second line"))
        system = replace(draft(c.conversation_id, "s1", "Ann joined."), sender_kind=SYSTEM)
        state.append_message(system)  # not counted, as in SQLite
    state.save_conversation(conversation("other", visitor_id="v2"))
    history = state.history("v1", exclude="c2")
    assert [h.conversation_id for h in history] == ["c1", "c0"]
    assert history[0].agent == "Ann" and history[0].message_count == 2
    assert [c.conversation_id for c in state.unfinished_conversations()] == ["other"]


def test_a_redis_crash_with_appendonly_loses_no_acknowledged_write(
    persistent_redis: RedisServer,
) -> None:
    state = RedisLiveState.from_url(persistent_redis.url, prefix="t:")
    c = conversation()
    state.save_conversation(c)
    for n in range(50):
        state.append_message(draft("c1", f"m{n}", f"text {n}"))
    state.save_agent_status("a1", AgentStatus.AWAY)
    assert state.claim_accept("c1", "ann") == "ann"

    persistent_redis.restart(crash=True)  # SIGKILL: only what was fsynced survives

    again = RedisLiveState.from_url(persistent_redis.url, prefix="t:")
    assert [m.client_id for m in again.messages("c1")] == [f"m{n}" for n in range(50)]
    assert again.append_message(draft("c1", "m49", "resend")).duplicate
    assert again.append_message(draft("c1", "m50", "next")).message.seq == 51
    assert again.agent_statuses() == {"a1": AgentStatus.AWAY}
    assert again.claim_accept("c1", "bob") == "ann"
    # The first client reconnects by itself (redis-py retries on a new connection).
    assert state.message_by_client_id("c1", "m0") is not None
    state.close()
    again.close()


def test_a_relayed_message_is_published_with_its_seq_and_refused_once_the_chat_ended(
    state: RedisLiveState, redis_url: str
) -> None:
    bus = RedisBus(redis.Redis.from_url(redis_url, decode_responses=True), prefix="t:")
    heard: list[dict[str, Any]] = []
    bus.listen(lambda event, channels: heard.append({**event, "to": sorted(channels)}))
    assert bus.wait_subscribed()
    c = conversation()
    state.save_conversation(c)
    add(state, c, "m1", "before")  # type: ignore[arg-type]
    try:
        body = bus_body({"type": "message.created", "seq": 0, "text": "hi"}, {"chat:c1"})
        first = state.relay_message(draft("c1", "v1", "hi"), bus.topic, [body])
        again = state.relay_message(draft("c1", "v1", "hi"), bus.topic, [body])
        assert first is not None and not first.duplicate and first.message.seq == 2
        assert again is not None and again.duplicate and again.message.seq == 2
        state.save_conversation(replace(c, state=ConversationState.ENDED))
        assert state.relay_message(draft("c1", "v2", "late"), bus.topic, [body]) is None
        # A resend after the end still finds the stored message.
        resent = state.relay_message(draft("c1", "v1", "hi"), bus.topic, [body])
        assert resent is not None and resent.duplicate
        deadline = time.monotonic() + 5
        while not heard and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.2)
        # Published once, with the seq the script gave it; nothing for the refused ones.
        assert heard == [{"type": "message.created", "seq": 2, "text": "hi", "to": ["chat:c1"]}]
        assert [m.text for m in state.messages("c1")] == ["before", "hi"]
    finally:
        bus.close()
