"""`RedisOutbox`: the durable outbox shared by every service process (Redis Streams).

Same interface, handlers and error classification as `connector.crm.outbox.Outbox` (its
`is_transient`, `is_pausing` and `retry_delay` decide), so the engine does not care which
one it has. What changes is who runs an item:

- An item is a key ``P outbox:item:[kind,key]`` holding its JSON (payload, state,
  attempts, error) plus an entry in the stream ``P outbox:stream`` naming it. `enqueue`
  is one Lua script: when the item key exists (pending, parked, or done within
  `DONE_RETENTION_SECS`) nothing happens, so (kind, key) is idempotent even after done.
- Every process reads the stream in one consumer group (``writers``), as a consumer
  named after itself: each entry goes to one process. The entry stays in the group's
  pending list until the outcome script acknowledges it.
- A process that dies holding an entry never acknowledges it. After `claim_idle_secs`
  another process's pass takes it over with XAUTOCLAIM and runs it. The outcome script
  first checks (XPENDING) that the entry still belongs to the caller, so a slow process
  that lost its entry cannot overwrite the new owner's outcome. Handlers stay idempotent
  (the chat activity's id is chosen by the client), so even a handler that ran past the
  takeover writes the record once.
- Outcomes (one Lua script each time, with the acknowledgement): done -> the item key
  expires after `DONE_RETENTION_SECS`; transient -> the item waits in the sorted set
  ``P outbox:retry`` until its due time (Retry-After, else backoff), then goes back on
  the stream; permanent -> the item is parked in the set ``P outbox:parked``.
- Throttling, unavailability and network failures pause every process, not only this
  one: ``P outbox:paused`` is set for the delay (Dataverse's limits are per user and org).

wt9 is adding listing, retrying and dropping parked items to the SQLite outbox (and an
``crmchat outbox`` CLI); `parked()` and `requeue_parked()` here have today's signatures,
and a `drop_parked()` would be the same per-item script with SREM + DEL.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from typing import Any, cast

import redis

from connector.crm.outbox import (
    DONE_RETENTION_SECS,
    MAX_BACKOFF_SECS,
    PASS_SIZE,
    Handler,
    OutboxWorker,
    _describe,
    is_pausing,
    is_transient,
    retry_delay,
)

__all__ = ["CLAIM_IDLE_SECS", "RedisOutbox"]

log = logging.getLogger(__name__)

# Far above a handler's longest run (a Dataverse request times out well before), so a
# live process never loses an item it is working on.
CLAIM_IDLE_SECS = 120.0
# Other processes' enqueues are seen within this; this process's at once.
POLL_SECS = 1.0
GROUP = "writers"

_ENQUEUE = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('SET', KEYS[1], ARGV[1])
redis.call('XADD', KEYS[2], '*', 'item', ARGV[2])
return 1
"""

# KEYS stream, item, retry, parked. ARGV group, entry id, consumer, item json, outcome,
# due ms, retention secs, member.
_OUTCOME = """
local mine = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[2], ARGV[2], 1, ARGV[3])
if #mine == 0 then return 0 end
redis.call('XACK', KEYS[1], ARGV[1], ARGV[2])
redis.call('XDEL', KEYS[1], ARGV[2])
if ARGV[5] == 'done' then
  redis.call('SET', KEYS[2], ARGV[4], 'EX', ARGV[7])
else
  redis.call('SET', KEYS[2], ARGV[4])
end
if ARGV[5] == 'retry' then redis.call('ZADD', KEYS[3], ARGV[6], ARGV[8]) end
if ARGV[5] == 'parked' then redis.call('SADD', KEYS[4], ARGV[8]) end
return 1
"""

# An entry whose item is gone or not pending (a duplicate delivery): acknowledge only.
_SKIP = """
redis.call('XACK', KEYS[1], ARGV[1], ARGV[2])
redis.call('XDEL', KEYS[1], ARGV[2])
return 1
"""

_PROMOTE = """
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
for _, member in ipairs(due) do
  redis.call('ZREM', KEYS[1], member)
  redis.call('XADD', KEYS[2], '*', 'item', member)
end
return #due
"""

_REQUEUE = """
if redis.call('SREM', KEYS[1], ARGV[1]) == 0 then return 0 end
redis.call('SET', KEYS[2], ARGV[2])
redis.call('XADD', KEYS[3], '*', 'item', ARGV[1])
return 1
"""


class RedisOutbox(OutboxWorker):
    """Durable, retrying work items shared by every process on one Redis.

    Args:
        client: a redis-py client with ``decode_responses=True``.
        handlers: kind -> function taking the payload; raising means "not done".
        consumer: this process's name in the group (default: a fresh random one).
        clock: wall-clock seconds (due times are shared, so every process's clock).
        claim_idle_secs: how long an entry may sit unacknowledged before another
            process takes it over (its holder died).
    """

    def __init__(
        self,
        client: redis.Redis,
        handlers: Mapping[str, Handler],
        *,
        prefix: str = "crmchat:",
        consumer: str | None = None,
        clock: Callable[[], float] = time.time,
        max_backoff_secs: float = MAX_BACKOFF_SECS,
        claim_idle_secs: float = CLAIM_IDLE_SECS,
    ) -> None:
        self._r = client
        self._handlers = dict(handlers)
        self._p = f"{prefix}outbox:"
        self._stream = f"{self._p}stream"
        self.consumer = consumer or uuid.uuid4().hex
        self._clock = clock
        self._max_backoff_secs = max_backoff_secs
        self._claim_idle_ms = int(claim_idle_secs * 1000)
        self._enqueue = client.register_script(_ENQUEUE)
        self._outcome = client.register_script(_OUTCOME)
        self._skip = client.register_script(_SKIP)
        self._promote = client.register_script(_PROMOTE)
        self._requeue = client.register_script(_REQUEUE)
        self._run_lock = threading.Lock()
        OutboxWorker.__init__(self)
        self._ensure_group()

    def _ensure_group(self) -> None:
        try:
            self._r.xgroup_create(self._stream, GROUP, id="0", mkstream=True)
        except redis.ResponseError as error:
            if "BUSYGROUP" not in str(error):
                raise

    @staticmethod
    def _member(kind: str, key: str) -> str:
        return json.dumps([kind, key], separators=(",", ":"), ensure_ascii=False)

    def _item_key(self, member: str) -> str:
        return f"{self._p}item:{member}"

    # ----- queue ------------------------------------------------------------------------

    def enqueue(self, kind: str, key: str, payload: Mapping[str, Any]) -> None:
        """Store an item to run; nothing happens if (kind, key) was enqueued before.

        Raises ValueError for a kind without a handler, TypeError for a payload that is
        not JSON.
        """
        if kind not in self._handlers:
            raise ValueError(f"no outbox handler for {kind!r}")
        item = {
            "kind": kind,
            "key": key,
            "payload": dict(payload),
            "state": "pending",
            "attempts": 0,
            "error": "",
            "updated_at": self._clock(),
        }
        body = json.dumps(item, ensure_ascii=False, separators=(",", ":"))
        member = self._member(kind, key)
        if self._enqueue(keys=[self._item_key(member), self._stream], args=[body, member]):
            self._wake.set()

    def pending(self) -> int:
        """Items not yet done and not parked."""
        return int(self._r.xlen(self._stream)) + int(self._r.zcard(f"{self._p}retry"))

    def _items(self, members: list[str]) -> list[dict[str, Any]]:
        texts = cast(list[str | None], self._r.mget([self._item_key(m) for m in members]))
        return [json.loads(text) for text in texts if text is not None]

    def parked(self) -> list[dict[str, Any]]:
        """Items that failed permanently: kind, key, payload, attempts, error, parked_at."""
        members = sorted(cast(set[str], self._r.smembers(f"{self._p}parked")))
        items = sorted(self._items(members), key=lambda item: float(item["updated_at"]))
        return [
            {
                "kind": item["kind"],
                "key": item["key"],
                "payload": item["payload"],
                "attempts": item["attempts"],
                "error": item["error"],
                "parked_at": item["updated_at"],
            }
            for item in items
        ]

    def requeue_parked(self, *, kind: str | None = None, key: str | None = None) -> int:
        """Make parked items (all, or those of `kind` / `key`) due again; returns how many."""
        count = 0
        members = cast(set[str], self._r.smembers(f"{self._p}parked"))
        for item in self._items(sorted(members)):
            if (kind is not None and item["kind"] != kind) or (
                key is not None and item["key"] != key
            ):
                continue
            member = self._member(item["kind"], item["key"])
            item.update(state="pending", updated_at=self._clock())
            body = json.dumps(item, ensure_ascii=False, separators=(",", ":"))
            keys = [f"{self._p}parked", self._item_key(member), self._stream]
            count += int(cast(int, self._requeue(keys=keys, args=[member, body])))
        if count:
            self._wake.set()
        return count

    # ----- running ----------------------------------------------------------------------

    def _entries(self) -> list[tuple[str, str]]:
        """This pass's entries: this consumer's own unfinished ones (a pass that paused or
        stopped), those taken over from dead holders, then new ones."""
        own = cast(
            list[Any],
            self._r.xreadgroup(GROUP, self.consumer, {self._stream: "0"}, count=PASS_SIZE),
        )
        entries = [entry for _stream, stream_entries in own for entry in stream_entries]
        taken = self._r.xautoclaim(
            self._stream, GROUP, self.consumer, self._claim_idle_ms, "0-0", count=PASS_SIZE
        )
        entries.extend(taken[1])
        room = PASS_SIZE - len(entries)
        if room > 0:
            fresh = cast(
                list[Any],
                self._r.xreadgroup(GROUP, self.consumer, {self._stream: ">"}, count=room),
            )
            for _stream, stream_entries in fresh:
                entries.extend(stream_entries)
        unique = {entry_id: fields["item"] for entry_id, fields in entries if fields}
        return list(unique.items())

    def run_due(self) -> int:
        """One pass over the items due now; returns how many were done.

        Transient failures are rescheduled, permanent ones parked (module docstring).
        """
        with self._run_lock:
            now_ms = int(self._clock() * 1000)
            paused_until = cast(str | None, self._r.get(f"{self._p}paused"))
            if paused_until is not None and now_ms < int(paused_until):
                return 0
            self._promote(keys=[f"{self._p}retry", self._stream], args=[now_ms, PASS_SIZE])
            done = 0
            try:
                entries = self._entries()
            except redis.ResponseError as error:
                if "NOGROUP" not in str(error):
                    raise
                # Redis came back without its data (no persistence): start a new group.
                self._ensure_group()
                entries = self._entries()
            for entry_id, member in entries:
                if self._stopping.is_set():
                    break
                outcome = self._run_one(entry_id, member)
                if outcome == "done":
                    done += 1
                elif outcome == "pause":
                    break
            return done

    def _finish(
        self, entry_id: str, member: str, item: dict[str, Any], outcome: str, delay: float = 0.0
    ) -> bool:
        due_ms = int((self._clock() + delay) * 1000)
        body = json.dumps(item, ensure_ascii=False, separators=(",", ":"))
        keys = [self._stream, self._item_key(member), f"{self._p}retry", f"{self._p}parked"]
        args: list[str | int] = [
            GROUP,
            entry_id,
            self.consumer,
            body,
            outcome,
            due_ms,
            int(DONE_RETENTION_SECS),
            member,
        ]
        return bool(self._outcome(keys=keys, args=args))

    def _run_one(self, entry_id: str, member: str) -> str:
        text = cast(str | None, self._r.get(self._item_key(member)))
        item: dict[str, Any] | None = json.loads(text) if text is not None else None
        if item is None or item["state"] != "pending":
            self._skip(keys=[self._stream], args=[GROUP, entry_id])
            return "skipped"
        kind, key = item["kind"], item["key"]
        attempt = int(item["attempts"]) + 1
        item["attempts"] = attempt
        handler = self._handlers.get(kind)
        try:
            if handler is None:
                raise LookupError(f"no outbox handler for {kind!r}")
            handler(item["payload"])
        except Exception as error:
            item.update(error=_describe(error), updated_at=self._clock())
            if not is_transient(error):
                item["state"] = "parked"
                self._finish(entry_id, member, item, "parked")
                log.error("outbox %s %s failed permanently, parked: %s", kind, key, item["error"])
                return "parked"
            delay = retry_delay(error, attempt, self._max_backoff_secs)
            self._finish(entry_id, member, item, "retry", delay)
            log.warning(
                "outbox %s %s failed (attempt %d, %s); trying again in %.0f s",
                kind,
                key,
                attempt,
                type(error).__name__,
                delay,
            )
            if is_pausing(error):
                # The value decides (the shared clock); the expiry only tidies up.
                until_ms = int((self._clock() + delay) * 1000)
                self._r.set(f"{self._p}paused", until_ms, px=max(1, int(delay * 1000)) + 60_000)
                return "pause"
            return "retry"
        item.update(state="done", error="", updated_at=self._clock())
        if not self._finish(entry_id, member, item, "done"):
            log.warning("outbox %s %s was taken over while it ran", kind, key)
        return "done"

    def _work(self) -> None:
        while not self._stopping.is_set():
            try:
                self.run_due()
            except (redis.RedisError, OSError):
                log.warning("the outbox could not reach Redis; trying again", exc_info=True)
            self._wake.wait(POLL_SECS)
            self._wake.clear()

    def close(self) -> None:
        """Stop the worker (the items stay in Redis for the other processes)."""
        self.stop()

    def __enter__(self) -> RedisOutbox:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
