"""Latency of the scale-out primitives (docs/scale-out.md) on a real redis-server.

Starts its own redis-server (Debian's binary, a temp folder, a free port; appendonly off
unless --appendonly, which fsyncs every write) unless CRMCHAT_REDIS_URL is set, and
measures, one sample per call:

- append:       `append_message` on `RedisLiveState` from one process, and from two
                processes appending to their own chats at the same time; next to it
                `SqliteLiveState.append_message` (the single-process default, WAL)
- claim:        `claim_accept` (first accept wins)
- lease:        `acquire_lease` + `release_lease` (a compound change's lock)
- bus:          `RedisBus.publish` in this process -> delivery to a listener in another
                process (wall clock on one machine; includes the JSON round trip)

Prints one line per figure (p50 and p99 in microseconds) and, last, one JSON object with
the same figures. Usage: python bench/live_primitives.py [--count N] [--appendonly]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import statistics
import tempfile
import time
from datetime import UTC, datetime
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Barrier, Event
from pathlib import Path
from typing import Any

import redis

from connector.chat.bus import RedisBus
from connector.chat.model import Message, SenderKind
from connector.chat.redis_state import RedisLiveState
from connector.chat.state import SqliteLiveState
from connector.redis_server import RedisServer

__all__ = ["main", "measure", "percentiles"]

CTX = multiprocessing.get_context("spawn")
PREFIX = "bench:"


def percentiles(samples_ns: list[int]) -> dict[str, float]:
    """p50 and p99 in microseconds."""
    ordered = sorted(samples_ns)
    cuts = statistics.quantiles(ordered, n=100, method="inclusive")
    return {"p50_us": round(cuts[49] / 1000, 1), "p99_us": round(cuts[98] / 1000, 1)}


def _draft(conversation_id: str, n: int) -> Message:
    return Message(
        conversation_id,
        0,
        f"m{n}",
        SenderKind.VISITOR,
        "v1",
        "Vera",
        f"message number {n}",
        datetime.now(UTC),
    )


def _appends(state: Any, conversation_id: str, count: int) -> list[int]:
    samples = []
    for n in range(count):
        draft = _draft(conversation_id, n)
        start = time.perf_counter_ns()
        state.append_message(draft)
        samples.append(time.perf_counter_ns() - start)
    return samples


def _append_worker(
    url: str, conversation_id: str, count: int, gate: Barrier, out: Queue[Any]
) -> None:
    state = RedisLiveState.from_url(url, prefix=PREFIX)
    gate.wait()
    out.put(_appends(state, conversation_id, count))
    state.close()


def _bus_listener(url: str, count: int, ready: Event, out: Queue[Any]) -> None:
    bus = RedisBus(redis.Redis.from_url(url, decode_responses=True), prefix=PREFIX)
    latencies: list[int] = []
    bus.listen(lambda event, _channels: latencies.append(time.time_ns() - event["sent_ns"]))
    bus.wait_subscribed()
    ready.set()
    deadline = time.monotonic() + 120
    while len(latencies) < count and time.monotonic() < deadline:
        time.sleep(0.01)
    out.put(latencies)
    bus.close()


def measure(url: str, count: int, folder: Path) -> dict[str, dict[str, float]]:
    figures: dict[str, dict[str, float]] = {}
    state = RedisLiveState.from_url(url, prefix=PREFIX)
    figures["append (redis, 1 process)"] = percentiles(_appends(state, "solo", count))

    gate, out = CTX.Barrier(2), CTX.Queue()
    workers = [
        CTX.Process(target=_append_worker, args=(url, f"pair{n}", count, gate, out))
        for n in range(2)
    ]
    for worker in workers:
        worker.start()
    both = out.get(timeout=300) + out.get(timeout=300)
    for worker in workers:
        worker.join(60)
    figures["append (redis, 2 processes)"] = percentiles(both)

    sqlite = SqliteLiveState(folder / "live.sqlite")
    figures["append (sqlite, 1 process)"] = percentiles(_appends(sqlite, "solo", count))
    sqlite.close()

    claims = []
    for n in range(count):
        start = time.perf_counter_ns()
        state.claim_accept(f"c{n}", "ann")
        claims.append(time.perf_counter_ns() - start)
    figures["claim_accept (redis)"] = percentiles(claims)

    leases = []
    for n in range(count):
        start = time.perf_counter_ns()
        state.acquire_lease(f"conversation:c{n}", "me", 5)
        state.release_lease(f"conversation:c{n}", "me")
        leases.append(time.perf_counter_ns() - start)
    figures["lease acquire+release (redis)"] = percentiles(leases)
    state.close()

    ready, out = CTX.Event(), CTX.Queue()
    listener = CTX.Process(target=_bus_listener, args=(url, count, ready, out))
    listener.start()
    ready.wait(60)
    bus = RedisBus(redis.Redis.from_url(url, decode_responses=True), prefix=PREFIX)
    for n in range(count):
        bus.publish({"type": "message.created", "seq": n, "sent_ns": time.time_ns()}, {"c"})
        # Paced like chat traffic, not a flood: the figure is latency, not a queue's depth.
        time.sleep(0.0005)
    figures["bus publish->deliver (2 processes)"] = percentiles(out.get(timeout=300))
    listener.join(60)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=5000, help="samples per figure")
    parser.add_argument("--appendonly", action="store_true", help="fsync every Redis write")
    options = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        url = os.environ.get("CRMCHAT_REDIS_URL")
        server = None
        if url is None:
            server = RedisServer(folder / "redis", appendonly=options.appendonly)
            url = server.start()
        try:
            figures = measure(url, options.count, folder)
        finally:
            if server is not None:
                server.stop()
    mode = "appendonly fsync always" if options.appendonly else "no persistence"
    print(f"redis-server ({mode}), {options.count} samples per figure, {os.cpu_count()} cores")
    for name, values in figures.items():
        print(f"{name:38} p50 {values['p50_us']:9.1f} us   p99 {values['p99_us']:9.1f} us")
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
