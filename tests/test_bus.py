"""The event bus: an event published on one process reaches every process, in order."""

from __future__ import annotations

import json
import logging
import multiprocessing
import threading
import time
from typing import Any

import pytest
import redis
from live_workers import collect_bus, publish_bus

from connector.chat.bus import LocalBus, RedisBus, attach_hub
from connector.chat.hub import Hub, Subscriber
from connector.redis_server import RedisServer

CTX = multiprocessing.get_context("spawn")


def wait_for(condition: Any, timeout_secs: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_secs
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_the_local_bus_delivers_at_once_in_order() -> None:
    bus = LocalBus()
    got: list[tuple[int, frozenset[str]]] = []
    bus.listen(lambda event, channels: got.append((event["n"], channels)))
    for n in range(3):
        bus.publish({"n": n}, ["agent:a1", "agent:a1", "visitor:v1"])
    assert got == [(n, frozenset({"agent:a1", "visitor:v1"})) for n in range(3)]


def test_an_event_published_here_reaches_a_subscriber_in_another_process(
    redis_url: str,
) -> None:
    ready, out = CTX.Event(), CTX.Queue()
    subscriber = CTX.Process(target=collect_bus, args=(redis_url, 300, ready, out))
    subscriber.start()
    assert ready.wait(30)
    bus = RedisBus(redis.Redis.from_url(redis_url, decode_responses=True), prefix="t:")
    for n in range(300):
        bus.publish({"type": "message.created", "seq": n + 1}, {"conversation:c1", "agent:a1"})
    got = out.get(timeout=60)
    subscriber.join(30)
    assert [event["seq"] for event, _ in got] == list(range(1, 301))
    assert all(channels == ["agent:a1", "conversation:c1"] for _, channels in got)


def test_two_publishing_processes_keep_each_conversations_order(redis_url: str) -> None:
    bus = RedisBus(redis.Redis.from_url(redis_url, decode_responses=True), prefix="t:")
    got: list[dict[str, Any]] = []
    lock = threading.Lock()

    def keep(event: dict[str, Any], channels: frozenset[str]) -> None:
        with lock:
            got.append(event)

    bus.listen(keep)
    assert bus.wait_subscribed()
    gate = CTX.Barrier(2)
    publishers = [
        CTX.Process(target=publish_bus, args=(redis_url, chat, 400, gate)) for chat in ("a", "b")
    ]
    for process in publishers:
        process.start()
    for process in publishers:
        process.join(60)
        assert process.exitcode == 0
    wait_for(lambda: len(got) == 800)
    for chat in ("a", "b"):
        assert [e["seq"] for e in got if e["conversation_id"] == chat] == list(range(1, 401))
    bus.close()


def test_after_a_redis_restart_the_bus_resubscribes_and_asks_for_a_resync(
    redis_server: RedisServer,
) -> None:
    client = redis.Redis.from_url(redis_server.url, decode_responses=True)
    bus = RedisBus(client, prefix="t:")
    got: list[int] = []
    resets: list[bool] = []
    bus.listen(lambda event, channels: got.append(event["n"]), on_reset=lambda: resets.append(True))
    assert bus.wait_subscribed()
    bus.publish({"n": 1}, ["x"])
    wait_for(lambda: got == [1])

    redis_server.restart()
    wait_for(lambda: resets == [True])  # the hub's cue to make its clients resync
    assert bus.wait_subscribed()
    bus.publish({"n": 2}, ["x"])
    wait_for(lambda: got == [1, 2])
    bus.close()


def test_a_stranger_on_the_bus_channel_does_not_stop_delivery(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    bus = RedisBus(client, prefix="t:")
    got: list[int] = []
    bus.listen(lambda event, channels: got.append(event["n"]))
    assert bus.wait_subscribed()
    client.publish("t:bus", "not json")
    client.publish("t:bus", '{"unexpected": true}')
    bus.publish({"n": 1}, ["x"])
    wait_for(lambda: got == [1])
    bus.close()


def test_while_redis_is_away_the_bus_logs_one_line_not_one_per_attempt(
    redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    client = redis.Redis.from_url(redis_server.url, decode_responses=True)
    bus = RedisBus(client, prefix="t:")
    resets: list[bool] = []
    bus.listen(lambda event, channels: None, on_reset=lambda: resets.append(True))
    assert bus.wait_subscribed()
    with caplog.at_level(logging.INFO, logger="connector.chat.bus"):
        redis_server.kill()
        time.sleep(4)  # attempts at 0.1, 0.2, 0.4, 0.8, 1.6 s... all fail
        redis_server.start()
        wait_for(lambda: resets == [True])
    lines = [
        (r.levelname, r.getMessage()) for r in caplog.records if r.name == "connector.chat.bus"
    ]
    assert [level for level, _ in lines] == ["WARNING", "INFO"], lines
    assert lines[1][1] == "the event bus is back on Redis"
    bus.close()


def test_after_a_redis_restart_every_socket_of_the_hub_is_told_to_resync(
    redis_server: RedisServer,
) -> None:
    client = redis.Redis.from_url(redis_server.url, decode_responses=True)
    bus = RedisBus(client, prefix="t:")
    hub = Hub()
    frames: dict[str, list[str]] = {"visitor": [], "agent": []}
    for name, channel in (("visitor", "visitor:v1"), ("agent", "agent:a1")):
        hub.subscribe(channel, Subscriber(frames[name].append, name=name))
    attach_hub(bus, hub)
    assert bus.wait_subscribed()
    bus.publish({"type": "message.created", "seq": 1}, ["visitor:v1"])
    wait_for(lambda: len(frames["visitor"]) == 1)

    redis_server.restart(crash=True)
    resync = {"type": "resync"}
    wait_for(lambda: [json.loads(f) for f in frames["agent"]] == [resync])
    assert json.loads(frames["visitor"][-1]) == resync
    bus.close()
