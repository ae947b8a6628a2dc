"""Due timers: claimed once across processes, and not lost with the process that held one."""

from __future__ import annotations

import multiprocessing
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import redis
from live_workers import claim_timer_and_die, claim_timers

from connector.chat.timers import LocalTimers, RedisTimers

CTX = multiprocessing.get_context("spawn")


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now

    def at(self, secs: float) -> datetime:
        return datetime.fromtimestamp(self.now + secs, tz=UTC)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture(params=["local", "redis"])
def timers(request: pytest.FixtureRequest, clock: Clock) -> Iterator[Any]:
    if request.param == "local":
        yield LocalTimers(clock=clock, claim_secs=30)
        return
    client = redis.Redis.from_url(request.getfixturevalue("redis_url"), decode_responses=True)
    yield RedisTimers(client, prefix="t:", clock=clock, claim_secs=30)
    client.close()


def test_a_timer_fires_once_when_due_and_moves_when_set_again(timers: Any, clock: Clock) -> None:
    timers.set("rating_grace", "c1", clock.at(120))
    timers.set("leave_grace", "c2", clock.at(15))
    timers.set("leave_grace", "c2", clock.at(20))  # the visitor came back: moved
    assert timers.claim_due() == []
    assert timers.next_due() == clock.at(20)
    clock.now += 20
    (due,) = timers.claim_due()
    assert (due.kind, due.key, due.due_at) == ("leave_grace", "c2", clock.at(0))
    assert timers.claim_due() == []  # claimed: nobody else gets it
    assert timers.done(due)
    clock.now += 100
    assert [t.key for t in timers.claim_due()] == ["c1"]


def test_setting_or_cancelling_during_a_claim_wins_over_done(timers: Any, clock: Clock) -> None:
    timers.set("leave_grace", "c1", clock.at(0))
    timers.set("leave_grace", "c2", clock.at(0))
    first, second = timers.claim_due()
    timers.set("leave_grace", "c1", clock.at(15))  # re-armed while the sweep worked
    timers.cancel("leave_grace", "c2")
    assert not timers.done(first) and not timers.done(second)
    clock.now += 15
    assert [t.key for t in timers.claim_due()] == ["c1"]


def test_a_claim_that_is_never_done_comes_due_again(timers: Any, clock: Clock) -> None:
    timers.set("ring", "c1", clock.at(0))
    assert len(timers.claim_due()) == 1
    clock.now += 29
    assert timers.claim_due() == []
    clock.now += 1  # the claimer died: after CLAIM_SECS another sweep takes it
    assert [t.key for t in timers.claim_due()] == ["c1"]


def test_two_processes_never_claim_the_same_timer(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    timers = RedisTimers(client, prefix="t:")
    past = datetime.now(UTC) - timedelta(seconds=1)
    for n in range(300):
        timers.set("ring", f"c{n}", past)
    gate, out = CTX.Barrier(2), CTX.Queue()
    workers = [CTX.Process(target=claim_timers, args=(redis_url, gate, out)) for _ in range(2)]
    for worker in workers:
        worker.start()
    first, second = out.get(timeout=60), out.get(timeout=60)
    for worker in workers:
        worker.join(30)
    assert not set(first) & set(second)
    assert sorted(first + second) == sorted(f"c{n}" for n in range(300))
    assert timers.next_due() is None
    client.close()


def test_a_timer_survives_the_death_of_the_process_that_claimed_it(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    timers = RedisTimers(client, prefix="t:")
    timers.set("rating_grace", "c1", datetime.now(UTC) - timedelta(seconds=1))
    out = CTX.Queue()
    doomed = CTX.Process(target=claim_timer_and_die, args=(redis_url, 0.3, out))
    doomed.start()
    assert out.get(timeout=60) == ["c1"]
    doomed.join(30)
    assert timers.claim_due() == []
    time.sleep(0.35)
    (due,) = timers.claim_due()
    assert due.key == "c1" and timers.done(due)
    client.close()
