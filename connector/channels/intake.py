"""From a checked webhook to the engine: drop redeliveries, queue, hand over in the back.

The webhook view only checks, parses and calls `ChannelIntake.do_accept`; a worker thread
hands each event to the `ChannelSink` (the engine, next round), so the platform gets its
200 at once (Meta and Viber retry slow or failed calls, which would redeliver).

A redelivery is the same event again (same message id, kind and person): platforms retry
until they get a 200, so one that timed out may arrive twice. `do_accept` remembers the
keys of the last `DEDUPE_MAX_KEYS` events for `DEDUPE_TTL_SECS` and drops repeats. Alone,
that memory is in the process; with several processes on one Redis (`claims`, the shared
live state) each key is a one-shot claim there (`SET NX PX`), so a redelivery that reaches
another process is dropped too (docs/channels.md).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from typing import Protocol

import redis

from .model import ChannelAccount, InboundEvent

__all__ = ["ChannelIntake", "ChannelSink", "OnceClaims", "QueueFull", "RecentEvents"]

log = logging.getLogger(__name__)

# Viber retries for about an hour and Meta for up to 36 hours, but nearly all redeliveries
# come within minutes; a day covers Meta's first retries with room.
DEDUPE_TTL_SECS = 24 * 60 * 60
# ~100 bytes a key: 200,000 keys is ~20 MB at most.
DEDUPE_MAX_KEYS = 200_000
# Events waiting for the worker; beyond this the webhook answers 503 and the platform
# retries later, rather than the process growing without bound.
QUEUE_MAX_EVENTS = 10_000


class ChannelSink(Protocol):
    """The engine's side: what becomes of an inbound event (docs/channels.md)."""

    def do_channel_event(self, account: ChannelAccount, event: InboundEvent) -> None: ...


class OnceClaims(Protocol):
    """The shared live state's one-shot claim (`LivePrimitives.claim_once`)."""

    def claim_once(self, key: str, ttl_secs: float) -> bool: ...


class RecentEvents:
    """A sink that keeps the last events (until the engine takes channel events)."""

    def __init__(self, *, limit: int = 1000) -> None:
        self._events: deque[InboundEvent] = deque(maxlen=limit)
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)

    def do_channel_event(self, account: ChannelAccount, event: InboundEvent) -> None:
        with self._changed:
            self._events.append(event)
            self._changed.notify_all()

    def events(self) -> list[InboundEvent]:
        with self._lock:
            return list(self._events)

    def wait_for(self, count: int, *, timeout: float = 5.0) -> list[InboundEvent]:
        """The events once there are at least `count` (or when `timeout` runs out)."""
        with self._changed:
            self._changed.wait_for(lambda: len(self._events) >= count, timeout=timeout)
            return list(self._events)


class QueueFull(Exception):
    """More events wait than QUEUE_MAX_EVENTS, or the redelivery memory (Redis) cannot
    be reached: answer 503 so the platform retries."""


class ChannelIntake:
    def __init__(
        self,
        sink: ChannelSink,
        *,
        clock: Callable[[], float] = time.monotonic,
        ttl_secs: float = DEDUPE_TTL_SECS,
        max_keys: int = DEDUPE_MAX_KEYS,
        claims: OnceClaims | None = None,
    ) -> None:
        """`claims`: the state several processes share (Redis); None keeps the memory
        in this process."""
        self.sink = sink
        self._claims = claims
        self._clock = clock
        self._ttl = ttl_secs
        self._max_keys = max_keys
        self._seen: OrderedDict[str, float] = OrderedDict()
        self._lock = threading.Lock()
        self._queue: queue.Queue[tuple[ChannelAccount, InboundEvent] | None] = queue.Queue(
            QUEUE_MAX_EVENTS
        )
        self._thread: threading.Thread | None = None

    def _first_time(self, key: str) -> bool:
        if self._claims is not None:
            return self._claims.claim_once(f"channel-event:{key}", self._ttl)
        now = self._clock()
        with self._lock:
            while self._seen:
                oldest, at = next(iter(self._seen.items()))
                if now - at < self._ttl and len(self._seen) < self._max_keys:
                    break
                del self._seen[oldest]
            if key in self._seen:
                return False
            self._seen[key] = now
            return True

    def do_accept(self, account: ChannelAccount, events: list[InboundEvent]) -> int:
        """Queue the events not seen before; returns how many were new.

        Raises:
            QueueFull: the worker is too far behind, or Redis is away (nothing of this
                call is queued; the platform retries).
        """
        # Room is checked before anything is remembered: a claim in Redis cannot be
        # handed back, and a refused call must be taken in full when the platform retries.
        if self._queue.qsize() + len(events) > QUEUE_MAX_EVENTS:
            raise QueueFull("too many channel events waiting")
        try:
            fresh = [event for event in events if self._first_time(event.dedupe_key)]
        except redis.RedisError:
            # Unremembered, an event might be handled twice: let the platform retry.
            log.warning("channel events refused: the redelivery memory is unreachable")
            raise QueueFull("the redelivery memory is unreachable") from None
        for event in fresh:
            self._queue.put((account, event))
        return len(fresh)

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._run, name="crmchat-channel-intake", daemon=True
            )
            self._thread.start()

    def stop(self) -> None:
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join(timeout=5)
            self._thread = None

    def drain(self) -> None:
        """Hand over everything queued, in this thread (tests, and when not started)."""
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return
            if item is not None:
                self._hand_over(*item)

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            self._hand_over(*item)

    def _hand_over(self, account: ChannelAccount, event: InboundEvent) -> None:
        try:
            self.sink.do_channel_event(account, event)
        except Exception:
            # One bad event must not stop the ones behind it; the trace goes to the log.
            log.exception("channel event %s could not be handled", event.kind)
