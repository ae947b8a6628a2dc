"""The atomic steps of the scale-out (`LivePrimitives`), from two real processes.

Each test runs on both implementations: `SqliteLiveState` (the single-process default,
here shared by two processes through its file) and `RedisLiveState` on a real
redis-server. The second process is a spawned Python (tests/live_workers.py), not a
second client in this thread.
"""

from __future__ import annotations

import multiprocessing
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from live_workers import (
    append_all,
    bump_under_lease,
    claim_all,
    draft,
    hold_presence,
    open_state,
    swap_all,
)
from test_chat_state import T0, conversation

from connector.chat.leases import LeaseBusy, conversation_lease, holding
from connector.chat.model import ConversationState

CTX = multiprocessing.get_context("spawn")


@pytest.fixture(params=["sqlite", "redis"])
def spec(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:{tmp_path / 'live.sqlite'}"
    return f"redis:{request.getfixturevalue('redis_url')}"


@pytest.fixture
def state(spec: str) -> Iterator[Any]:
    live = open_state(spec)
    yield live
    live.close()


def run(*processes: Any) -> None:
    for process in processes:
        process.start()


def joined(*processes: Any) -> None:
    for process in processes:
        process.join(60)
        assert process.exitcode == 0, f"{process.name} failed"


def test_appends_from_two_processes_number_the_messages_1_to_n(spec: str, state: Any) -> None:
    gate, out = CTX.Barrier(2), CTX.Queue()
    workers = [
        CTX.Process(
            target=append_all,
            args=(spec, "c1", [f"p{p}-{n}" for n in range(150)], gate, out),
        )
        for p in range(2)
    ]
    run(*workers)
    results = [out.get(timeout=60), out.get(timeout=60)]
    joined(*workers)

    stored = state.messages("c1")
    assert [m.seq for m in stored] == list(range(1, 301))
    assert sorted(m.client_id for m in stored) == sorted([*results[0], *results[1]])
    # Each process was told the seq its message really has.
    by_client = {m.client_id: m.seq for m in stored}
    assert all(by_client[c] == seq for r in results for c, seq in r.items())


def test_the_same_client_id_from_two_processes_is_one_message(spec: str, state: Any) -> None:
    gate, out = CTX.Barrier(2), CTX.Queue()
    client_ids = [f"m{n}" for n in range(100)]
    workers = [
        CTX.Process(target=append_all, args=(spec, "c1", client_ids, gate, out)) for _ in range(2)
    ]
    run(*workers)
    first, second = out.get(timeout=60), out.get(timeout=60)
    joined(*workers)

    stored = state.messages("c1")
    assert [m.seq for m in stored] == list(range(1, 101))
    assert sorted(m.client_id for m in stored) == sorted(client_ids)
    # The resend got the stored message back: both processes saw the same seq.
    assert first == second


def test_a_duplicate_append_returns_the_stored_message_unchanged(state: Any) -> None:
    first = state.append_message(draft("c1", "same", "one"))
    again = state.append_message(draft("c1", "same", "two"))
    assert not first.duplicate and again.duplicate
    assert again.message.seq == first.message.seq == 1 and again.message.text == "one"
    assert state.append_message(draft("c2", "same", "other chat")).message.seq == 1


def test_two_processes_accepting_the_same_chats_one_wins_each(spec: str, state: Any) -> None:
    gate, out = CTX.Barrier(2), CTX.Queue()
    chats = [f"c{n}" for n in range(50)]
    workers = [
        CTX.Process(target=claim_all, args=(spec, chats, agent, gate, out))
        for agent in ("ann", "bob")
    ]
    run(*workers)
    seen = [out.get(timeout=60), out.get(timeout=60)]
    joined(*workers)

    for chat in chats:
        assert seen[0][chat] == seen[1][chat] in {"ann", "bob"}
    # The claim is for good: a late accept learns the winner.
    assert state.claim_accept("c0", "cid") == seen[0]["c0"]


def test_a_compound_change_under_the_lease_loses_no_update(spec: str, state: Any) -> None:
    c = conversation("c1")
    state.save_conversation(c)
    gate, out = CTX.Barrier(2), CTX.Queue()
    workers = [
        CTX.Process(target=bump_under_lease, args=(spec, "c1", 40, gate, out)) for _ in range(2)
    ]
    run(*workers)
    out.get(timeout=60), out.get(timeout=60)
    joined(*workers)
    assert state.conversation("c1").rating == 80


def test_a_lease_is_exclusive_and_lapses_when_its_holder_is_gone(state: Any) -> None:
    name = conversation_lease("c1")
    assert state.acquire_lease(name, "p1", 0.3)
    assert not state.acquire_lease(name, "p2", 0.3)
    with pytest.raises(LeaseBusy):
        with holding(state, name, wait_secs=0.05):
            pass
    time.sleep(0.35)  # p1 died without releasing
    assert state.acquire_lease(name, "p2", 5)
    assert not state.release_lease(name, "p1")  # p1's lease was gone
    assert state.release_lease(name, "p2")
    with holding(state, name):
        assert not state.acquire_lease(name, "p3", 5)
    assert state.acquire_lease(name, "p3", 5)


def test_presence_is_summed_over_live_processes_and_a_dead_one_vanishes(
    spec: str, state: Any
) -> None:
    ready, stop = CTX.Event(), CTX.Event()
    other = CTX.Process(target=hold_presence, args=(spec, "proc-b", "v1", 2, 0.8, ready, stop))
    other.start()
    assert ready.wait(30)
    state.presence_beat("proc-a", 30)
    assert state.presence_change("proc-a", "v1", 1) == 3
    assert state.presence_change("proc-a", "ag1", 1) == 1
    assert state.presence_counts() == {"v1": 3, "ag1": 1}
    stop.set()
    joined(other)
    time.sleep(0.9)  # proc-b stopped beating: its sockets are gone with it
    assert state.presence_counts() == {"v1": 1, "ag1": 1}
    assert state.dead_processes() == ["proc-b"]
    state.presence_forget("proc-b")
    assert state.dead_processes() == []
    assert state.presence_change("proc-a", "v1", -1) == 0
    state.presence_forget("proc-a")
    assert state.presence_counts() == {}


def test_appended_messages_load_like_added_ones(state: Any) -> None:
    c = conversation("c1")
    c.state = ConversationState.WAITING
    state.save_conversation(c)
    first = draft("c1", "m1", "hello")
    state.append_message(first)
    loaded = state.conversation("c1")
    assert loaded.last_seq == 1
    assert loaded.last_visitor_message_at == first.sent_at
    assert loaded.waiting_since == T0 and loaded.started_at + timedelta(0) == T0


def test_an_availability_change_is_announced_by_one_process(spec: str, state: Any) -> None:
    widgets = [f"w{n}" for n in range(40)]
    gate, out = CTX.Barrier(2), CTX.Queue()
    workers = [CTX.Process(target=swap_all, args=(spec, widgets, gate, out)) for _ in range(2)]
    run(*workers)
    first, second = out.get(timeout=60), out.get(timeout=60)
    joined(*workers)
    assert sorted(first + second) == sorted(widgets)  # each change told once, by one
    assert not state.swap_availability("w0", True)
    assert state.swap_availability("w0", False) and state.swap_availability("w0", True)
