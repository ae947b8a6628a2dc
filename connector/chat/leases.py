"""Holding a per-conversation lease for a compound change (`holding`).

A change that reads a conversation, decides, and writes it back (accept, transfer, end)
must not interleave with the same change on another process. A lease is the short,
self-expiring lock of `LivePrimitives.acquire_lease`, one per conversation: unrelated
chats never wait for each other, and a process that dies holding one only delays that
chat by `LEASE_SECS`. Rules (docs/scale-out.md): hold it for state writes and publishing
only, never across a Dataverse request.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import redis

from connector.chat.state import LivePrimitives

__all__ = ["LEASE_SECS", "LEASE_WAIT_SECS", "LeaseBusy", "conversation_lease", "holding"]

log = logging.getLogger(__name__)

# Far above a change's few Redis round trips; short enough that a dead holder is a blip.
LEASE_SECS = 5.0
# A caller waits this long before giving up with LeaseBusy (a 409 to the client).
LEASE_WAIT_SECS = 2.0
_FIRST_PAUSE_SECS = 0.001
_LONGEST_PAUSE_SECS = 0.02


class LeaseBusy(Exception):
    """Another change held the lease for longer than the caller would wait."""


def conversation_lease(conversation_id: str) -> str:
    """The lease name of one conversation."""
    return f"conversation:{conversation_id}"


@contextmanager
def holding(
    state: LivePrimitives,
    name: str,
    *,
    ttl_secs: float = LEASE_SECS,
    wait_secs: float = LEASE_WAIT_SECS,
) -> Iterator[str]:
    """Hold lease `name` for the body; yields the owner token. Raises LeaseBusy."""
    owner = uuid.uuid4().hex
    deadline = time.monotonic() + wait_secs
    pause = _FIRST_PAUSE_SECS
    while not state.acquire_lease(name, owner, ttl_secs):
        if time.monotonic() >= deadline:
            raise LeaseBusy(f"{name} is busy")
        time.sleep(pause)
        pause = min(_LONGEST_PAUSE_SECS, pause * 2)
    try:
        yield owner
    finally:
        try:
            state.release_lease(name, owner)
        except (redis.RedisError, OSError):
            # The change is done; a lease that cannot be freed (Redis just went away)
            # lapses by itself after ttl_secs, delaying only the next change of `name`.
            log.warning("could not release the lease %s; it lapses by itself", name)
