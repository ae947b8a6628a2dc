"""What the second (and third) process does in the cross-process tests.

Each function runs in a process of its own (multiprocessing, "spawn": nothing shared with
the test but the arguments), opens its own connections from a state spec
(``sqlite:<path>`` or ``redis:<url>``), and reports through a queue.
"""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Barrier, Event
from pathlib import Path
from typing import Any

import redis

from connector.chat.bus import RedisBus
from connector.chat.heartbeat import ProcessHeartbeat
from connector.chat.leases import conversation_lease, holding
from connector.chat.model import Message, SenderKind
from connector.chat.redis_state import RedisLiveState
from connector.chat.state import SqliteLiveState
from connector.chat.timers import RedisTimers
from connector.crm.shared_outbox import RedisOutbox


def open_state(spec: str) -> SqliteLiveState | RedisLiveState:
    kind, _, where = spec.partition(":")
    if kind == "sqlite":
        return SqliteLiveState(Path(where))
    return RedisLiveState.from_url(where, prefix="t:")


def draft(conversation_id: str, client_id: str, text: str) -> Message:
    return Message(
        conversation_id,
        0,
        client_id,
        SenderKind.VISITOR,
        "v1",
        "Vera",
        text,
        datetime.now(UTC),
    )


def append_all(
    spec: str, conversation_id: str, client_ids: list[str], gate: Barrier, out: Queue[Any]
) -> None:
    state = open_state(spec)
    gate.wait()
    seqs = {}
    for client_id in client_ids:
        result = state.append_message(draft(conversation_id, client_id, f"from {os.getpid()}"))
        seqs[client_id] = result.message.seq
    out.put(seqs)
    state.close()


def claim_all(
    spec: str, conversation_ids: list[str], agent_id: str, gate: Barrier, out: Queue[Any]
) -> None:
    state = open_state(spec)
    gate.wait()
    out.put({cid: state.claim_accept(cid, agent_id) for cid in conversation_ids})
    state.close()


def claim_once_all(spec: str, keys: list[str], gate: Barrier, out: Queue[Any]) -> None:
    state = open_state(spec)
    gate.wait()
    out.put([key for key in keys if state.claim_once(key, 60)])
    state.close()


def swap_all(spec: str, widget_ids: list[str], gate: Barrier, out: Queue[Any]) -> None:
    state = open_state(spec)
    gate.wait()
    out.put([w for w in widget_ids if state.swap_availability(w, True)])
    state.close()


def bump_under_lease(
    spec: str, conversation_id: str, times: int, gate: Barrier, out: Queue[Any]
) -> None:
    """Read-modify-write of one conversation: lost updates unless the lease holds."""
    state = open_state(spec)
    gate.wait()
    for _ in range(times):
        with holding(state, conversation_lease(conversation_id), wait_secs=30):
            conversation = state.conversation(conversation_id)
            assert conversation is not None
            conversation.rating = (conversation.rating or 0) + 1
            state.save_conversation(conversation)
    out.put(times)
    state.close()


def hold_presence(
    spec: str,
    process_id: str,
    member: str,
    sockets: int,
    ttl_secs: float,
    ready: Event,
    stop: Event,
) -> None:
    """Open `sockets` for `member` and beat until told to stop (then beat no more)."""
    state = open_state(spec)
    state.presence_beat(process_id, ttl_secs)
    for _ in range(sockets):
        state.presence_change(process_id, member, 1)
    ready.set()
    stop.wait(30)
    state.close()


def collect_bus(url: str, count: int, ready: Event, out: Queue[Any]) -> None:
    bus = RedisBus(redis.Redis.from_url(url, decode_responses=True), prefix="t:")
    got: list[tuple[dict[str, Any], list[str]]] = []
    bus.listen(lambda event, channels: got.append((event, sorted(channels))))
    bus.wait_subscribed()
    ready.set()
    deadline = time.monotonic() + 30
    while len(got) < count and time.monotonic() < deadline:
        time.sleep(0.01)
    out.put(got)
    bus.close()


def publish_bus(url: str, conversation_id: str, count: int, gate: Barrier) -> None:
    bus = RedisBus(redis.Redis.from_url(url, decode_responses=True), prefix="t:")
    gate.wait()
    for seq in range(1, count + 1):
        bus.publish(
            {"type": "message.created", "conversation_id": conversation_id, "seq": seq},
            {f"conversation:{conversation_id}"},
        )


def claim_timers(url: str, gate: Barrier, out: Queue[Any]) -> None:
    timers = RedisTimers(redis.Redis.from_url(url, decode_responses=True), prefix="t:")
    gate.wait()
    taken: list[str] = []
    while batch := timers.claim_due(limit=7):
        for timer in batch:
            taken.append(timer.key)
            timers.done(timer)
    out.put(taken)


def claim_timer_and_die(url: str, claim_secs: float, out: Queue[Any]) -> None:
    timers = RedisTimers(
        redis.Redis.from_url(url, decode_responses=True), prefix="t:", claim_secs=claim_secs
    )
    out.put([timer.key for timer in timers.claim_due()])
    out.close()
    out.join_thread()  # the report is sent; now die without `done`
    os._exit(0)


def hold_outbox_item(url: str, started: str) -> None:
    """Take the one queued item and never finish it (the test kills this process)."""

    def stuck(payload: dict[str, Any]) -> None:
        Path(started).write_text(str(payload["n"]), encoding="utf-8")
        time.sleep(3600)

    outbox = RedisOutbox(
        redis.Redis.from_url(url, decode_responses=True),
        {"chat": stuck},
        prefix="t:",
        consumer="doomed",
    )
    outbox.run_due()


def beat_with_sockets(spec: str, process_id: str, ready: Event) -> None:
    """A live service process: beating, with two sockets open; the test kills it."""
    state = open_state(spec)
    heartbeat = ProcessHeartbeat(state, process_id=process_id, beat_secs=0.1, ttl_secs=0.5)
    heartbeat.start()
    state.presence_change(process_id, "visitor:v1", 2)
    ready.set()
    time.sleep(3600)
