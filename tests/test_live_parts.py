"""`open_live`: the default needs no Redis; with Redis, a socket on one process hears an
event published by another through its own hub."""

from __future__ import annotations

import json
import multiprocessing
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from live_workers import publish_bus

from connector.chat.bus import LocalBus, RedisBus, attach_hub
from connector.chat.hub import Hub, Subscriber
from connector.chat.live import BACKGROUND_CONNECTIONS, open_live
from connector.chat.redis_state import RedisLiveState
from connector.chat.state import SqliteLiveState
from connector.crm.outbox import Outbox
from connector.crm.shared_outbox import RedisOutbox

CTX = multiprocessing.get_context("spawn")


def test_without_a_redis_url_everything_is_local_files(tmp_path: Path) -> None:
    parts = open_live(tmp_path)
    assert not parts.shared
    assert isinstance(parts.state, SqliteLiveState) and isinstance(parts.bus, LocalBus)
    outbox = parts.outbox({"job": lambda payload: None})
    assert isinstance(outbox, Outbox)
    assert {p.name for p in tmp_path.iterdir()} >= {"live.sqlite", "outbox.sqlite"}
    outbox.close()
    parts.close()


def test_the_local_bus_reaches_the_hub_when_the_publisher_flushes(tmp_path: Path) -> None:
    parts = open_live(tmp_path)
    hub, sent = Hub(), list[str]()
    hub.subscribe("conversation:c1", Subscriber(sent.append))
    attach_hub(parts.bus, hub)
    parts.bus.publish({"type": "message.created", "seq": 1}, {"conversation:c1"})
    assert sent == []  # queued: the engine sends after its change
    hub.flush()
    assert [json.loads(frame)["seq"] for frame in sent] == [1]
    parts.close()


def test_with_redis_a_socket_here_hears_an_event_published_in_another_process(
    redis_url: str, tmp_path: Path
) -> None:
    parts = open_live(tmp_path, redis_url)
    assert parts.shared and isinstance(parts.state, RedisLiveState)
    assert isinstance(parts.outbox({"job": lambda payload: None}), RedisOutbox)
    # The worker publishes with the test prefix; listen there.
    assert isinstance(parts.bus, RedisBus)
    bus = RedisBus(parts.client, prefix="t:")  # type: ignore[arg-type]
    hub = Hub()
    visitor, other = list[str](), list[str]()
    hub.subscribe("conversation:c1", Subscriber(visitor.append))
    hub.subscribe("conversation:c2", Subscriber(other.append))
    attach_hub(bus, hub)
    assert bus.wait_subscribed()
    gate = CTX.Barrier(1)
    publisher = CTX.Process(target=publish_bus, args=(redis_url, "c1", 50, gate))
    publisher.start()
    publisher.join(60)
    assert publisher.exitcode == 0
    deadline = time.monotonic() + 10
    while len(visitor) < 50:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    assert [json.loads(frame)["seq"] for frame in visitor] == list(range(1, 51))
    assert other == []
    bus.close()
    parts.close()


def test_more_threads_in_redis_at_once_than_connections_wait_for_one_and_all_succeed(
    tmp_path: Path, redis_url: str
) -> None:
    # Each relayed message is a Redis call made without any lock: a burst may have every
    # request thread in Redis at once. The pool holds one connection per thread (plus the
    # background ones); past that a caller waits for a connection, it never fails.
    parts = open_live(tmp_path, redis_url, threads=4)
    assert parts.client is not None
    callers = 4 + BACKGROUND_CONNECTIONS + 30
    try:
        with ThreadPoolExecutor(callers) as pool:
            # Each holds its connection for 0.2 s (a blocking pop that times out).
            answers = list(
                pool.map(lambda n: parts.client.blpop([f"none-{n}"], 0.2), range(callers))
            )
        assert answers == [None] * callers
        clients = parts.client.client_list()
        assert len(clients) <= 4 + BACKGROUND_CONNECTIONS + 2  # the bus's own, and this call
    finally:
        parts.close()
