"""The shared outbox on Redis Streams: the SQLite outbox's contract, plus what several
processes add (a dead holder's item written once by another, Redis restarts)."""

from __future__ import annotations

import multiprocessing
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from live_workers import hold_outbox_item

# The SQLite outbox's queue tests, run here against `RedisOutbox` (the fixtures below).
from test_outbox import (  # noqa: F401
    Clock,
    Handler,
    test_a_server_error_on_one_item_does_not_hold_back_others,
    test_an_item_runs_once_and_is_done,
    test_enqueue_is_idempotent_on_the_key_even_after_done,
    test_enqueue_refuses_unknown_kinds_and_non_json,
    test_permanent_failures_are_parked_not_dropped,
    test_retry_after_is_honoured,
    test_throttling_holds_back_the_rest_of_the_pass,
    test_without_retry_after_the_backoff_doubles_up_to_a_cap,
    throttled,
)

from connector.crm.shared_outbox import RedisOutbox
from connector.redis_server import RedisServer

CTX = multiprocessing.get_context("spawn")


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def handler() -> Handler:
    return Handler()


@pytest.fixture
def outbox(redis_client: redis.Redis, handler: Handler, clock: Clock) -> Iterator[RedisOutbox]:
    with RedisOutbox(redis_client, {"job": handler}, prefix="t:", clock=clock) as box:
        yield box


def test_a_pause_holds_back_every_process(
    redis_client: redis.Redis, handler: Handler, clock: Clock
) -> None:
    handler.errors = [throttled(retry_after=30)]
    one = RedisOutbox(redis_client, {"job": handler}, prefix="t:", clock=clock)
    other = RedisOutbox(redis_client, {"job": handler}, prefix="t:", clock=clock)
    for key in ("a", "b"):
        one.enqueue("job", key, {"key": key})
    assert one.run_due() == 0
    assert other.run_due() == 0 and len(handler.calls) == 1  # Dataverse said slow down
    clock.now += 30
    assert one.run_due() + other.run_due() == 2
    assert sorted(c["key"] for c in handler.calls[1:]) == ["a", "b"]


def test_each_item_goes_to_one_process(redis_client: redis.Redis, clock: Clock) -> None:
    first, second = Handler(), Handler()
    one = RedisOutbox(redis_client, {"job": first}, prefix="t:", clock=clock)
    other = RedisOutbox(redis_client, {"job": second}, prefix="t:", clock=clock)
    for n in range(10):
        one.enqueue("job", f"k{n}", {"n": n})
        assert (other if n % 2 else one).run_due() == 1
    assert one.run_due() + other.run_due() == 0
    assert [c["n"] for c in first.calls] == [0, 2, 4, 6, 8]
    assert [c["n"] for c in second.calls] == [1, 3, 5, 7, 9]
    assert one.pending() == 0


def test_kill_9_of_the_process_holding_an_item_the_other_writes_it_once(
    redis_url: str, tmp_path: Path
) -> None:
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    written = Handler()
    survivor = RedisOutbox(
        client, {"chat": written}, prefix="t:", consumer="survivor", claim_idle_secs=0.5
    )
    survivor.enqueue("chat", "c1", {"n": 1})
    started = tmp_path / "started"
    doomed = CTX.Process(target=hold_outbox_item, args=(redis_url, str(started)))
    doomed.start()
    deadline = time.monotonic() + 60
    while not started.exists():
        assert time.monotonic() < deadline and doomed.is_alive()
        time.sleep(0.02)
    assert survivor.run_due() == 0  # the doomed process holds it
    assert doomed.pid is not None
    os.kill(doomed.pid, signal.SIGKILL)
    doomed.join(10)

    deadline = time.monotonic() + 10
    while not written.calls:
        assert time.monotonic() < deadline, "the item was never taken over"
        survivor.run_due()
        time.sleep(0.1)
    time.sleep(0.6)
    assert survivor.run_due() == 0
    assert written.calls == [{"n": 1}] and survivor.pending() == 0
    survivor.enqueue("chat", "c1", {"n": 1})  # a late re-enqueue after the takeover
    assert survivor.run_due() == 0 and len(written.calls) == 1
    client.close()


def test_a_handler_that_lost_its_item_cannot_overwrite_the_new_owners_outcome(
    redis_client: redis.Redis, clock: Clock
) -> None:
    slow_calls: list[Any] = []
    fast = Handler()
    takeover: list[RedisOutbox] = []

    def slow(payload: dict[str, Any]) -> None:
        slow_calls.append(payload)
        time.sleep(0.2)
        takeover[0].run_due()  # meanwhile another process took it and wrote it

    slow_box = RedisOutbox(redis_client, {"job": slow}, prefix="t:", clock=clock)
    takeover.append(
        RedisOutbox(redis_client, {"job": fast}, prefix="t:", clock=clock, claim_idle_secs=0.1)
    )
    slow_box.enqueue("job", "k1", {"n": 1})
    assert slow_box.run_due() == 1
    assert len(slow_calls) == 1 and fast.calls == [{"n": 1}]
    assert slow_box.run_due() + takeover[0].run_due() == 0 and slow_box.pending() == 0


def test_a_redis_crash_with_appendonly_loses_no_queued_item(
    persistent_redis: RedisServer, clock: Clock
) -> None:
    client = redis.Redis.from_url(persistent_redis.url, decode_responses=True)
    handler = Handler(errors=[throttled(retry_after=60)])
    box = RedisOutbox(client, {"job": handler}, prefix="t:", clock=clock)
    for n in range(20):
        box.enqueue("job", f"k{n}", {"n": n})
    box.run_due()  # k0 waits for its Retry-After, k1..k19 were held back

    persistent_redis.restart(crash=True)

    again = redis.Redis.from_url(persistent_redis.url, decode_responses=True)
    after = Handler()
    box = RedisOutbox(again, {"job": after}, prefix="t:", clock=clock, claim_idle_secs=0)
    assert box.pending() == 20
    clock.now += 60
    assert box.run_due() == 20
    assert sorted(c["n"] for c in after.calls) == list(range(20))
    box.enqueue("job", "k3", {"n": 3})  # done survives too: still idempotent
    assert box.run_due() == 0
    client.close()
    again.close()


def test_the_worker_thread_runs_items_enqueued_by_another_process(
    redis_client: redis.Redis,
) -> None:
    seen: list[dict[str, Any]] = []
    worker = RedisOutbox(redis_client, {"job": seen.append}, prefix="t:")
    producer = RedisOutbox(redis_client, {"job": seen.append}, prefix="t:")
    worker.start()
    try:
        producer.enqueue("job", "k1", {"n": 1})
        deadline = time.monotonic() + 10
        while not seen:
            assert time.monotonic() < deadline
            time.sleep(0.05)
    finally:
        worker.stop()
    assert seen == [{"n": 1}]


def test_after_redis_lost_its_data_the_outbox_starts_a_new_group(
    redis_server: RedisServer,
) -> None:
    client = redis.Redis.from_url(redis_server.url, decode_responses=True)
    seen: list[dict[str, Any]] = []
    box = RedisOutbox(client, {"job": seen.append}, prefix="t:")
    redis_server.restart()  # no persistence: the stream and its group are gone
    box.enqueue("job", "k1", {"n": 1})
    assert box.run_due() == 1 and seen == [{"n": 1}]
    client.close()
