"""The hub: channels of subscribers (websockets), and the fan-out of events to them.

A `Subscriber` wraps one websocket's send function with an outgoing queue. Publishing only
queues the serialised frame (cheap, done while the engine holds its lock, so every
subscriber receives events in the order they happened); `Hub.flush()` then sends what this
thread queued, after the engine lock is released, so one slow client cannot stall the
others. A subscriber whose send fails is dropped from every channel.

Only `connector.chat.actions` publishes; recipients are chosen by `connector.chat.routing`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any, NamedTuple

from connector.chat.events import MESSAGE_CREATED, TYPING, json_frame
from connector.metrics import MESSAGES_RELAYED, RELAY_SECONDS

__all__ = ["Hub", "Queued", "Subscriber"]

log = logging.getLogger(__name__)
# One line per chat event; typing indicators only at DEBUG (several a second while typing).
event_log = logging.getLogger("crmchat.chat.events")
_QUIET = frozenset({TYPING})


class Subscriber:
    """One websocket: an ordered outgoing queue in front of its `send` function."""

    def __init__(self, send: Callable[[str], None], *, name: str = "") -> None:
        self._send = send
        self._queue: deque[str] = deque()
        self._send_lock = threading.Lock()
        self.name = name
        self.closed = False

    def put(self, text: str) -> None:
        """Queue one frame (thread-safe; order is the order of `put` calls)."""
        if not self.closed:
            self._queue.append(text)

    def flush(self) -> bool:
        """Send everything queued, in order. False when the socket failed (now closed)."""
        with self._send_lock:
            while self._queue:
                text = self._queue.popleft()
                try:
                    self._send(text)
                except Exception:  # noqa: BLE001 - any failure means the socket is gone
                    log.debug("dropping subscriber %s: send failed", self.name)
                    self.closed = True
                    self._queue.clear()
                    return False
        return not self.closed


class Queued(NamedTuple):
    """Frames queued by one thread and not sent yet: whose queues, and which events."""

    subscribers: set[Subscriber]
    events: list[tuple[dict[str, Any], int, float]]


class Hub:
    """Channels -> subscribers. Thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._channels: dict[str, set[Subscriber]] = {}
        self._memberships: dict[Subscriber, set[str]] = {}
        self._local = threading.local()

    def subscribe(self, channel: str, subscriber: Subscriber) -> None:
        with self._lock:
            self._channels.setdefault(channel, set()).add(subscriber)
            self._memberships.setdefault(subscriber, set()).add(channel)

    def unsubscribe(self, channel: str, subscriber: Subscriber) -> None:
        with self._lock:
            self._remove(channel, subscriber)

    def unsubscribe_all(self, subscriber: Subscriber) -> None:
        """Forget `subscriber` everywhere (its socket closed)."""
        with self._lock:
            for channel in list(self._memberships.get(subscriber, ())):
                self._remove(channel, subscriber)
            self._memberships.pop(subscriber, None)

    def _remove(self, channel: str, subscriber: Subscriber) -> None:
        members = self._channels.get(channel)
        if members is not None:
            members.discard(subscriber)
            if not members:
                del self._channels[channel]
        self._memberships.get(subscriber, set()).discard(channel)

    def subscribers(self, channel: str) -> int:
        """How many subscribers `channel` has."""
        with self._lock:
            return len(self._channels.get(channel, ()))

    def publish(self, event: dict[str, Any], channels: Iterable[str]) -> int:
        """Queue `event` once for every subscriber of any of `channels`; returns how many.

        Call `flush()` afterwards (the engine does, when it releases its lock).
        """
        with self._lock:
            targets: set[Subscriber] = set()
            for channel in channels:
                targets.update(self._channels.get(channel, ()))
        if targets:
            text = json_frame(event)
            for subscriber in targets:
                self._queue(subscriber, text)
        self._pending_events().append((event, len(targets), time.perf_counter()))
        return len(targets)

    def _pending_events(self) -> list[tuple[dict[str, Any], int, float]]:
        pending: list[tuple[dict[str, Any], int, float]] | None = getattr(
            self._local, "events", None
        )
        if pending is None:
            pending = self._local.events = []
        return pending

    def publish_to_all(self, event: dict[str, Any]) -> int:
        """Queue `event` for every subscriber of this hub; returns how many (then flush)."""
        with self._lock:
            targets = set(self._memberships)
        text = json_frame(event)
        for subscriber in targets:
            self._queue(subscriber, text)
        return len(targets)

    def send_to(self, subscriber: Subscriber, event: dict[str, Any]) -> None:
        """Queue `event` for one subscriber (an answer to its own frame)."""
        self._queue(subscriber, json_frame(event))

    def _queue(self, subscriber: Subscriber, text: str) -> None:
        subscriber.put(text)
        touched: set[Subscriber] | None = getattr(self._local, "touched", None)
        if touched is None:
            touched = self._local.touched = set()
        touched.add(subscriber)

    def take_queued(self) -> Queued:
        """What this thread queued and has not sent yet, handed over (and forgotten here):
        the relay's writer thread queues a committed message's frames and the sender's
        thread sends them (`send_queued`), so the writer never waits for a socket."""
        touched: set[Subscriber] = getattr(self._local, "touched", None) or set()
        published = self._pending_events()
        self._local.touched = set()
        self._local.events = []
        return Queued(touched, published)

    def send_queued(self, queued: Queued) -> None:
        """Send `queued` (from `take_queued`); drop subscribers whose socket failed. Then
        log and measure its events (outside the engine lock, like the sends)."""
        for subscriber in queued.subscribers:
            if not subscriber.flush():
                self.unsubscribe_all(subscriber)
        if queued.events:
            _record(queued.events)

    def flush(self) -> None:
        """Send what this thread queued (`send_queued` of `take_queued`)."""
        self.send_queued(self.take_queued())


def _record(published: list[tuple[dict[str, Any], int, float]]) -> None:
    """One log line per chat event (never its text), and the relay metrics."""
    done = time.perf_counter()
    for event, recipients, at in published:
        kind = str(event.get("type", ""))
        if kind == MESSAGE_CREATED:
            MESSAGES_RELAYED.inc()
            RELAY_SECONDS.observe(done - at)
        event_log.log(
            logging.DEBUG if kind in _QUIET else logging.INFO,
            "chat event %s",
            kind,
            extra={
                "event": kind,
                "conversation_id": event.get("conversation_id"),
                "seq": event.get("seq"),
                "recipients": recipients,
            },
        )
