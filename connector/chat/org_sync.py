"""`OrgSync`: keeps several service processes' engines in step over one Redis.

Each process's engine works on its own copy of the open chats, the visitors and the
agents (`ChatEngine.conversations`, `visitors`, `agents`), the same dicts it uses alone.
On Redis the shared state is the truth and those dicts are a working copy, kept exact by
two rules (docs/scale-out.md, "What is cached per process"):

- Every change runs under ONE org-wide lease (``org``, `leases.holding`), so no two
  processes change the live chat at once, whichever chats they touch.
- Each change that wrote anything bumps the org's version (``<prefix>version``, INCR)
  before the lease is released; a process that takes the lease and finds a version it has
  not seen reloads its copy from the state first (`ChatEngine.sync_from_state`).

So a process never decides on a copy older than the last change anywhere. The price is
that changes are serialised across processes (a few Redis round trips each, no
Dataverse call under the lease) and a reload after every foreign change; per-conversation
leases would let unrelated chats change in parallel, at the cost of re-reading every
conversation an action touches (the design's next step, docs/scale-out.md).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import redis

from connector.chat.leases import holding
from connector.chat.redis_state import RedisLiveState

__all__ = ["ORG_LEASE", "OrgSync"]

ORG_LEASE = "org"


class OrgSync:
    """The org-wide lease and change version on one Redis (module docstring)."""

    def __init__(self, client: redis.Redis, state: RedisLiveState, *, prefix: str) -> None:
        self._r = client
        self._state = state
        self._key = f"{prefix}version"

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

    def bump(self) -> int:
        """Count one more change (call it under the lease, after the writes)."""
        return int(self._r.incr(self._key))
