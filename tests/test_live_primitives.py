"""The atomic steps of the scale-out (`LivePrimitives`), from two real processes.

Each test runs on both implementations: `SqliteLiveState` (the single-process default,
here shared by two processes through its file) and `RedisLiveState` on a real
redis-server. The second process is a spawned Python (tests/live_workers.py), not a
second client in this thread.
"""

from __future__ import annotations

import multiprocessing
import time
from datetime import timedelta
from typing import Any

import pytest
from live_workers import (
    append_all,
    bump_under_lease,
    claim_all,
    claim_once_all,
    draft,
    hold_presence,
    swap_all,
)
from test_chat_state import T0, conversation

from connector.chat.leases import LeaseBusy, conversation_lease, holding
from connector.chat.model import ConversationKind, ConversationState

CTX = multiprocessing.get_context("spawn")


def run(*processes: Any) -> None:
    for process in processes:
        process.start()


def joined(*processes: Any) -> None:
    for process in processes:
        process.join(60)
        assert process.exitcode == 0, f"{process.name} failed"


def test_appends_from_two_processes_number_the_messages_1_to_n(
    live_spec: str, live_state: Any
) -> None:
    gate, out = CTX.Barrier(2), CTX.Queue()
    workers = [
        CTX.Process(
            target=append_all,
            args=(live_spec, "c1", [f"p{p}-{n}" for n in range(150)], gate, out),
        )
        for p in range(2)
    ]
    run(*workers)
    results = [out.get(timeout=60), out.get(timeout=60)]
    joined(*workers)

    stored = live_state.messages("c1")
    assert [m.seq for m in stored] == list(range(1, 301))
    assert sorted(m.client_id for m in stored) == sorted([*results[0], *results[1]])
    # Each process was told the seq its message really has.
    by_client = {m.client_id: m.seq for m in stored}
    assert all(by_client[c] == seq for r in results for c, seq in r.items())


def test_the_same_client_id_from_two_processes_is_one_message(
    live_spec: str, live_state: Any
) -> None:
    gate, out = CTX.Barrier(2), CTX.Queue()
    client_ids = [f"m{n}" for n in range(100)]
    workers = [
        CTX.Process(target=append_all, args=(live_spec, "c1", client_ids, gate, out))
        for _ in range(2)
    ]
    run(*workers)
    first, second = out.get(timeout=60), out.get(timeout=60)
    joined(*workers)

    stored = live_state.messages("c1")
    assert [m.seq for m in stored] == list(range(1, 101))
    assert sorted(m.client_id for m in stored) == sorted(client_ids)
    # The resend got the stored message back: both processes saw the same seq.
    assert first == second


def test_a_duplicate_append_returns_the_stored_message_unchanged(live_state: Any) -> None:
    first = live_state.append_message(draft("c1", "same", "one"))
    again = live_state.append_message(draft("c1", "same", "two"))
    assert not first.duplicate and again.duplicate
    assert again.message.seq == first.message.seq == 1 and again.message.text == "one"
    assert live_state.append_message(draft("c2", "same", "other chat")).message.seq == 1


def test_two_processes_accepting_the_same_chats_one_wins_each(
    live_spec: str, live_state: Any
) -> None:
    gate, out = CTX.Barrier(2), CTX.Queue()
    chats = [f"c{n}" for n in range(50)]
    workers = [
        CTX.Process(target=claim_all, args=(live_spec, chats, agent, gate, out))
        for agent in ("ann", "bob")
    ]
    run(*workers)
    seen = [out.get(timeout=60), out.get(timeout=60)]
    joined(*workers)

    for chat in chats:
        assert seen[0][chat] == seen[1][chat] in {"ann", "bob"}
    # The claim is for good: a late accept learns the winner.
    assert live_state.claim_accept("c0", "cid") == seen[0]["c0"]


def test_a_compound_change_under_the_lease_loses_no_update(live_spec: str, live_state: Any) -> None:
    c = conversation("c1")
    live_state.save_conversation(c)
    gate, out = CTX.Barrier(2), CTX.Queue()
    workers = [
        CTX.Process(target=bump_under_lease, args=(live_spec, "c1", 40, gate, out))
        for _ in range(2)
    ]
    run(*workers)
    out.get(timeout=60), out.get(timeout=60)
    joined(*workers)
    assert live_state.conversation("c1").rating == 80


def test_a_lease_is_exclusive_and_lapses_when_its_holder_is_gone(live_state: Any) -> None:
    name = conversation_lease("c1")
    assert live_state.acquire_lease(name, "p1", 0.3)
    assert not live_state.acquire_lease(name, "p2", 0.3)
    with pytest.raises(LeaseBusy):
        with holding(live_state, name, wait_secs=0.05):
            pass
    time.sleep(0.35)  # p1 died without releasing
    assert live_state.acquire_lease(name, "p2", 5)
    assert not live_state.release_lease(name, "p1")  # p1's lease was gone
    assert live_state.release_lease(name, "p2")
    with holding(live_state, name):
        assert not live_state.acquire_lease(name, "p3", 5)
    assert live_state.acquire_lease(name, "p3", 5)


def test_presence_is_summed_over_live_processes_and_a_dead_one_vanishes(
    live_spec: str, live_state: Any
) -> None:
    ready, stop = CTX.Event(), CTX.Event()
    other = CTX.Process(target=hold_presence, args=(live_spec, "proc-b", "v1", 2, 0.8, ready, stop))
    other.start()
    assert ready.wait(30)
    live_state.presence_beat("proc-a", 30)
    assert live_state.presence_change("proc-a", "v1", 1) == 3
    assert live_state.presence_change("proc-a", "ag1", 1) == 1
    assert live_state.presence_counts() == {"v1": 3, "ag1": 1}
    stop.set()
    joined(other)
    time.sleep(0.9)  # proc-b stopped beating: its sockets are gone with it
    assert live_state.presence_counts() == {"v1": 1, "ag1": 1}
    assert live_state.dead_processes() == ["proc-b"]
    live_state.presence_forget("proc-b")
    assert live_state.dead_processes() == []
    assert live_state.presence_change("proc-a", "v1", -1) == 0
    live_state.presence_forget("proc-a")
    assert live_state.presence_counts() == {}


def test_appended_messages_load_like_added_ones(live_state: Any) -> None:
    c = conversation("c1")
    c.state = ConversationState.WAITING
    live_state.save_conversation(c)
    first = draft("c1", "m1", "hello")
    live_state.append_message(first)
    loaded = live_state.conversation("c1")
    assert loaded.last_seq == 1
    assert loaded.last_visitor_message_at == first.sent_at
    assert loaded.waiting_since == T0 and loaded.started_at + timedelta(0) == T0


def test_an_availability_change_is_announced_by_one_process(
    live_spec: str, live_state: Any
) -> None:
    widgets = [f"w{n}" for n in range(40)]
    gate, out = CTX.Barrier(2), CTX.Queue()
    workers = [CTX.Process(target=swap_all, args=(live_spec, widgets, gate, out)) for _ in range(2)]
    run(*workers)
    first, second = out.get(timeout=60), out.get(timeout=60)
    joined(*workers)
    assert sorted(first + second) == sorted(widgets)  # each change told once, by one
    assert not live_state.swap_availability("w0", True)
    assert live_state.swap_availability("w0", False) and live_state.swap_availability("w0", True)


def test_a_one_shot_claim_goes_to_one_process_and_lapses_after_its_ttl(
    live_spec: str, live_state: Any
) -> None:
    keys = [f"reply:c1:{seq}" for seq in range(1, 61)]
    gate, out = CTX.Barrier(2), CTX.Queue()
    workers = [
        CTX.Process(target=claim_once_all, args=(live_spec, keys, gate, out)) for _ in range(2)
    ]
    run(*workers)
    first, second = out.get(timeout=60), out.get(timeout=60)
    joined(*workers)
    assert sorted(first + second) == sorted(keys)  # each key won once, by one process
    assert not live_state.claim_once(keys[0], 60)
    assert live_state.claim_once("short", 0.2) and not live_state.claim_once("short", 0.2)
    time.sleep(0.3)
    assert live_state.claim_once("short", 0.2)  # lapsed: a new claim wins


def test_chats_by_state_count_what_is_not_yet_written_to_crm(live_state: Any) -> None:
    waiting = conversation("w1")
    waiting.state = ConversationState.WAITING
    active = conversation("a1")
    active.state = ConversationState.ACTIVE
    ended = conversation("e1")
    ended.state = ConversationState.ENDED
    written = conversation("f1")
    written.state, written.finished = ConversationState.ENDED, True
    internal = conversation("i1")
    internal.kind, internal.visitor_id = ConversationKind.AGENT, None
    internal.state = ConversationState.ENDED
    for c in (waiting, active, ended, written, internal):
        live_state.save_conversation(c)
    assert live_state.unfinished_by_state() == {"waiting": 1, "active": 1, "ended": 1}
    written_later = conversation("e1")
    written_later.state, written_later.finished = ConversationState.ENDED, True
    live_state.save_conversation(written_later)
    assert live_state.unfinished_by_state() == {"waiting": 1, "active": 1}
