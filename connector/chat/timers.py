"""Due timers (rating grace, leave grace, ring and ticket-fallback timeouts) that outlive
the process that set them.

A timer is (kind, key) -> due time; setting it again moves it. The engine's sweep will
`claim_due` and act on what it got, then call `done`. A claim is a lease: the claimed
timer moves to now + `CLAIM_SECS`, so if the claiming process dies before `done`, the
timer comes due again and another process's sweep takes it. `done` removes the timer only
if nobody set it again since the claim (a visitor who came back re-arms the leave grace).
Acting on a timer must therefore be idempotent: re-check the conversation, as the sweep
does today.

- `LocalTimers` (the single-process default): a dict behind a lock.
- `RedisTimers`: one sorted set, member ``[kind, key]`` (JSON), score the due time in
  milliseconds; claiming is one Lua script, so two processes never take the same timer.

Due times are the setting process's clock (`time.time()`); the processes of one
deployment keep their clocks in sync (NTP), and a skew only shifts a grace period.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol, cast

import redis

__all__ = ["CLAIM_SECS", "DueTimer", "LocalTimers", "RedisTimers", "Timers"]

# A sweep acts on a claimed timer within a second; a dead claimer delays it by this much.
CLAIM_SECS = 30.0
CLAIM_LIMIT = 100


@dataclass(frozen=True)
class DueTimer:
    kind: str
    key: str
    due_at: datetime
    claim_ms: int  # the lease this claim holds; `done` checks it


class Timers(Protocol):
    def set(self, kind: str, key: str, due_at: datetime) -> None:
        """Arm (or move) the timer."""

    def cancel(self, kind: str, key: str) -> None:
        """Forget the timer, claimed or not."""

    def claim_due(self, *, limit: int = CLAIM_LIMIT) -> list[DueTimer]:
        """Take the timers due now, earliest first, for `CLAIM_SECS`."""

    def done(self, timer: DueTimer) -> bool:
        """Remove a claimed timer; False when it was set again or cancelled meanwhile."""

    def next_due(self) -> datetime | None:
        """When the earliest timer is due (the sweep may sleep until then)."""


def _ms(value: datetime) -> int:
    return int(value.timestamp() * 1000)


def _at(ms: float) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


class LocalTimers:
    """`Timers` in this process's memory."""

    def __init__(
        self, *, clock: Callable[[], float] = time.time, claim_secs: float = CLAIM_SECS
    ) -> None:
        self._clock = clock
        self._claim_ms = int(claim_secs * 1000)
        self._lock = threading.Lock()
        self._due: dict[tuple[str, str], int] = {}

    def set(self, kind: str, key: str, due_at: datetime) -> None:
        with self._lock:
            self._due[(kind, key)] = _ms(due_at)

    def cancel(self, kind: str, key: str) -> None:
        with self._lock:
            self._due.pop((kind, key), None)

    def claim_due(self, *, limit: int = CLAIM_LIMIT) -> list[DueTimer]:
        now = int(self._clock() * 1000)
        with self._lock:
            due = sorted((ms, name) for name, ms in self._due.items() if ms <= now)[:limit]
            claim = now + self._claim_ms
            for _, name in due:
                self._due[name] = claim
        return [DueTimer(kind, key, _at(ms), claim) for ms, (kind, key) in due]

    def done(self, timer: DueTimer) -> bool:
        name = (timer.kind, timer.key)
        with self._lock:
            if self._due.get(name) != timer.claim_ms:
                return False
            del self._due[name]
            return True

    def next_due(self) -> datetime | None:
        with self._lock:
            return _at(min(self._due.values())) if self._due else None


# KEYS[1] the sorted set; ARGV now_ms, claim_ms, limit. Returns member, score, ... .
_CLAIM = """
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'WITHSCORES', 'LIMIT', 0,
  tonumber(ARGV[3]))
for i = 1, #due, 2 do redis.call('ZADD', KEYS[1], ARGV[2], due[i]) end
return due
"""

_DONE = """
local score = redis.call('ZSCORE', KEYS[1], ARGV[1])
if score and tonumber(score) == tonumber(ARGV[2]) then
  return redis.call('ZREM', KEYS[1], ARGV[1])
end
return 0
"""


class RedisTimers:
    """`Timers` in one Redis sorted set shared by every process (module docstring)."""

    def __init__(
        self,
        client: redis.Redis,
        *,
        prefix: str = "crmchat:",
        clock: Callable[[], float] = time.time,
        claim_secs: float = CLAIM_SECS,
    ) -> None:
        self._r = client
        self._key = f"{prefix}timers"
        self._clock = clock
        self._claim_ms = int(claim_secs * 1000)
        self._claim = client.register_script(_CLAIM)
        self._done = client.register_script(_DONE)

    @staticmethod
    def _member(kind: str, key: str) -> str:
        return json.dumps([kind, key], separators=(",", ":"))

    def set(self, kind: str, key: str, due_at: datetime) -> None:
        self._r.zadd(self._key, {self._member(kind, key): _ms(due_at)})

    def cancel(self, kind: str, key: str) -> None:
        self._r.zrem(self._key, self._member(kind, key))

    def claim_due(self, *, limit: int = CLAIM_LIMIT) -> list[DueTimer]:
        now = int(self._clock() * 1000)
        claim = now + self._claim_ms
        flat = cast(list[str], self._claim(keys=[self._key], args=[now, claim, limit]))
        timers = []
        for member, score in zip(flat[::2], flat[1::2], strict=True):
            kind, key = json.loads(member)
            timers.append(DueTimer(kind, key, _at(float(score)), claim))
        return timers

    def done(self, timer: DueTimer) -> bool:
        member = self._member(timer.kind, timer.key)
        return bool(self._done(keys=[self._key], args=[member, timer.claim_ms]))

    def next_due(self) -> datetime | None:
        first = cast(list[tuple[str, float]], self._r.zrange(self._key, 0, 0, withscores=True))
        return _at(first[0][1]) if first else None
