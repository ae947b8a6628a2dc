"""The event bus: an event published on one service process reaches the hub of every one.

The engine will publish each event once, with the hub channels it is for
(`routing.conversation_channels`, `agent_channel`, ...); every process's hub hands it to
its own websockets on those channels. Two implementations with one meaning:

- `LocalBus` (the single-process default): `publish` calls the listeners at once, in the
  publishing thread, so the order is the order of the changes, as today.
- `RedisBus`: one Redis pub/sub channel (``<prefix>bus``) carries ``{"event","channels"}``.
  Every process subscribes once and filters locally; a publisher receives its own events
  through Redis too, so all processes see one order: the order Redis received the
  PUBLISH commands. Per conversation that is the order of the changes: the engine
  publishes while it holds the org lease, and a relayed message is published by the
  script that stores it (`RedisLiveState.relay_message`), with its seq.

Pub/sub is at-most-once: a process that loses its Redis connection misses what was
published meanwhile. `on_reset` listeners run once it is subscribed again; the hub then
asks its clients to resync from their last `seq` (docs/protocol.md), which is exact,
because messages live in the state, not on the bus (docs/scale-out.md).
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Iterable
from typing import Any, Protocol, cast

import redis

from connector.chat import events
from connector.chat.hub import Hub

__all__ = ["EventBus", "Listener", "LocalBus", "RedisBus", "attach_hub", "bus_body"]

log = logging.getLogger(__name__)

# An event and the hub channels it is for.
Listener = Callable[[dict[str, Any], frozenset[str]], None]

# The subscriber thread wakes this often to notice `close`.
POLL_SECS = 0.5
# Waits between reconnection attempts after Redis went away: 0.1, 0.2, ... 2 s.
RECONNECT_FIRST_SECS = 0.1
RECONNECT_LONGEST_SECS = 2.0


def bus_body(event: dict[str, Any], channels: Iterable[str]) -> str:
    """What `RedisBus` publishes for `event`: a JSON object that starts with ``{``, so a
    Lua script may put ``"seq":n,`` in front (RedisLiveState.relay_message)."""
    return json.dumps(
        {"event": event, "channels": sorted(set(channels))},
        ensure_ascii=False,
        separators=(",", ":"),
    )


class EventBus(Protocol):
    def publish(self, event: dict[str, Any], channels: Iterable[str]) -> None:
        """Deliver `event` to the listeners of every process, with its `channels`."""

    def listen(self, listener: Listener, *, on_reset: Callable[[], None] | None = None) -> None:
        """Call `listener(event, channels)` for every event published from now on;
        `on_reset()` after events may have been missed (a lost Redis connection)."""

    def close(self) -> None:
        """Stop delivering."""


class LocalBus:
    """One process: listeners are called in the publishing thread."""

    def __init__(self) -> None:
        self._listeners: list[Listener] = []

    def publish(self, event: dict[str, Any], channels: Iterable[str]) -> None:
        targets = frozenset(channels)
        for listener in list(self._listeners):
            listener(event, targets)

    def listen(self, listener: Listener, *, on_reset: Callable[[], None] | None = None) -> None:
        # Nothing is ever missed in one process: on_reset never runs.
        self._listeners.append(listener)

    def close(self) -> None:
        self._listeners.clear()


class RedisBus:
    """Every process on one Redis pub/sub channel (see the module docstring)."""

    def __init__(self, client: redis.Redis, *, prefix: str = "crmchat:") -> None:
        self._r = client
        self.topic = f"{prefix}bus"
        self._listeners: list[Listener] = []
        self._resets: list[Callable[[], None]] = []
        self._lock = threading.Lock()
        self._subscribed = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def publish(self, event: dict[str, Any], channels: Iterable[str]) -> None:
        self._r.publish(self.topic, bus_body(event, channels))

    def listen(self, listener: Listener, *, on_reset: Callable[[], None] | None = None) -> None:
        with self._lock:
            self._listeners.append(listener)
            if on_reset is not None:
                self._resets.append(on_reset)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="crmchat-bus", daemon=True)
                self._thread.start()

    def wait_subscribed(self, timeout_secs: float = 5.0) -> bool:
        """True once the subscription is live (events published before are not seen)."""
        return self._subscribed.wait(timeout_secs)

    def close(self) -> None:
        self._stopping.set()
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(timeout=5)

    def _deliver(self, body: str | bytes) -> None:
        try:
            decoded = json.loads(body)
            event = cast(dict[str, Any], decoded["event"])
            channels = frozenset(cast(list[str], decoded["channels"]))
            if "seq" in decoded:  # a relayed message: its seq was given by the script
                event = {**event, "seq": int(decoded["seq"])}
        except (ValueError, KeyError, TypeError):
            # Not ours (someone else published on the channel): skip it, keep listening.
            log.warning("the event bus ignored a malformed message")
            return
        for listener in list(self._listeners):
            try:
                listener(event, channels)
            except Exception:
                log.exception("a bus listener failed on %s", event.get("type"))

    def _run(self) -> None:
        pause = RECONNECT_FIRST_SECS
        missed = False
        while not self._stopping.is_set():
            pubsub = self._r.pubsub()  # type: ignore[no-untyped-call]
            try:
                pubsub.subscribe(self.topic)
                # Live once Redis confirmed it: from then on no event is missed.
                while not self._stopping.is_set():
                    reply = pubsub.get_message(timeout=POLL_SECS)
                    if reply is not None and reply.get("type") == "subscribe":
                        break
                self._subscribed.set()
                if missed:
                    log.info("the event bus is back on Redis")
                    for reset in list(self._resets):
                        reset()
                    missed = False
                pause = RECONNECT_FIRST_SECS
                while not self._stopping.is_set():
                    message = pubsub.get_message(timeout=POLL_SECS)
                    if message is not None and message.get("type") == "message":
                        self._deliver(message["data"])
            except (redis.ConnectionError, redis.TimeoutError, OSError):
                self._subscribed.clear()
                # One line when Redis goes (and one when it is back), not one per attempt.
                level = logging.DEBUG if missed else logging.WARNING
                log.log(level, "the event bus lost Redis; reconnecting in %.1f s", pause)
                missed = True
                self._stopping.wait(pause)
                pause = min(RECONNECT_LONGEST_SECS, pause * 2)
            finally:
                try:
                    pubsub.close()
                except (redis.RedisError, OSError):
                    pass


def attach_hub(bus: EventBus, hub: Hub) -> None:
    """Deliver every bus event to this process's sockets on its channels.

    On `LocalBus` the publishing thread queues the frames and sends them when it calls
    `hub.flush()` after its change, as the engine does today. On `RedisBus` the bus's own
    thread queues and sends them at once, in the bus's order. After a reset every socket
    of this hub is sent `resync`.
    """
    flush = isinstance(bus, RedisBus)

    def deliver(event: dict[str, Any], channels: frozenset[str]) -> None:
        hub.publish(event, channels)
        if flush:
            hub.flush()

    def resync() -> None:
        # Events went by while the bus was away: every socket here reconnects and so
        # catches up from its last seq (a visitor's hello, a console's snapshot).
        told = hub.publish_to_all(events.event(events.RESYNC))
        hub.flush()
        log.info("told %d socket(s) to resync after the event bus was away", told)

    bus.listen(deliver, on_reset=resync)
