"""`OrgSync`: keeps several service processes' engines in step over one Redis.

Each process's engine works on its own copy of the open chats, the visitors and the
agents (`ChatEngine.conversations`, `visitors`, `agents`), the same dicts it uses alone.
On Redis the shared state is the truth and those dicts are a working copy, kept exact by
two rules (docs/scale-out.md, "What is cached per process"):

- Every change runs under ONE org-wide lease (``org``, `leases.holding`), so no two
  processes change the live chat at once, whichever chats they touch. The relay path
  (`message.send`, typing) is the exception: one script on the conversation's own keys
  (`RedisLiveState.relay_message`), heard by every copy on the bus (`ChatEngine.hear`).
- Each change that wrote anything bumps the org's version (``<prefix>version``, INCR)
  before the lease is released, and in the same script appends ``<version> <ids>`` to the
  change log (``<prefix>changes``, a list capped at `LOG_LENGTH`): the conversations,
  visitors and agents it wrote (`RedisLiveState.take_touched`). A process that takes the
  lease and finds a version it has not seen reloads from the state first: only the ids
  the log names for the versions it missed (`ChatEngine.sync_members`), or everything
  (`ChatEngine.sync_from_state`) when it fell further behind than the log reaches, or a
  missed entry says ``*`` (a process died: every count may have changed).

So a process never decides on a copy older than the last change anywhere, and catching
up costs what the missed changes wrote, not what is open. The price is that changes are
serialised across processes (a few Redis round trips each, no Dataverse call under the
lease); per-conversation leases would let unrelated chats change in parallel, at the cost
of re-reading every conversation an action touches (the design's next step,
docs/scale-out.md).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import cast

import redis

from connector.chat.leases import holding
from connector.chat.redis_state import RedisLiveState

__all__ = ["EVERYTHING", "LOG_LENGTH", "ORG_LEASE", "OrgSync"]

ORG_LEASE = "org"
# Entries kept in the change log: a process more changes behind than this reloads all.
# 1,000 changes is seconds of a busy org; an entry is a few ids.
LOG_LENGTH = 1000
# A log entry meaning "reload everything" (a dead process's sockets stopped counting).
EVERYTHING = "*"

# KEYS[1] version, KEYS[2] log; ARGV[1] the entry's ids (JSON or "*"), ARGV[2] the cap.
_BUMP = """
local v = redis.call('INCR', KEYS[1])
redis.call('RPUSH', KEYS[2], v .. ' ' .. ARGV[1])
redis.call('LTRIM', KEYS[2], -tonumber(ARGV[2]), -1)
return v
"""


class OrgSync:
    """The org-wide lease and change version on one Redis (module docstring)."""

    def __init__(self, client: redis.Redis, state: RedisLiveState, *, prefix: str) -> None:
        self._r = client
        self._state = state
        self._key = f"{prefix}version"
        self._log = f"{prefix}changes"
        self._bump = client.register_script(_BUMP)

    @contextmanager
    def holding(self) -> Iterator[None]:
        """Hold the org lease for one change. Raises `leases.LeaseBusy`."""
        with holding(self._state, ORG_LEASE):
            yield

    @property
    def state(self) -> RedisLiveState:
        """The shared state, with its primitives (presence, availability)."""
        return self._state

    def writes(self) -> int:
        """How many writes this process made to the state so far (compare two readings)."""
        return self._state.writes

    def version(self) -> int:
        """The number of changes made so far, by every process."""
        value = self._r.get(self._key)
        return int(str(value)) if value is not None else 0

    def bump(self, members: Iterable[str] | None = None) -> int:
        """Count one more change and log what it wrote (`members`; None: everything may
        have changed). Call it under the lease, after the writes; returns the version."""
        entry = EVERYTHING if members is None else json.dumps(sorted(members))
        return int(cast(int, self._bump(keys=[self._key, self._log], args=[entry, LOG_LENGTH])))

    def changes_since(self, seen: int, version: int) -> set[str] | None:
        """The members written by versions `seen`+1 .. `version`, or None when the log
        cannot say (never synced, fell behind the log, or an entry means everything)."""
        missed = version - seen
        if seen < 0 or missed <= 0 or missed > LOG_LENGTH:
            return None
        # A bump without the lease (`EVERYTHING`) may have landed after `version` was
        # read: take a few more entries and keep the wanted versions only.
        entries = cast(list[str], self._r.lrange(self._log, -min(missed + 8, LOG_LENGTH), -1))
        members: set[str] = set()
        found = 0
        for entry in entries:
            number, _, ids = entry.partition(" ")
            if not seen < int(number) <= version:
                continue
            if ids == EVERYTHING:
                return None
            found += 1
            members.update(json.loads(ids))
        return members if found == missed else None
