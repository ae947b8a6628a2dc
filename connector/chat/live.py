"""`open_live`: the live chat's shared parts for one process, from one setting.

Without a Redis URL (the default, `make run`): `SqliteLiveState` in
``<data_dir>/live.sqlite``, `LocalBus`, `LocalTimers`, and the SQLite `Outbox` in
``<data_dir>/outbox.sqlite``, the files the service uses today. With one
(``CRMCHAT_REDIS_URL``, read by phase 2's Settings): `RedisLiveState`, `RedisBus`,
`RedisTimers` and `RedisOutbox` on that Redis. Either way the engine gets the same
interfaces (docs/scale-out.md), so it has one code path.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import redis

from connector.chat.bus import EventBus, LocalBus, RedisBus
from connector.chat.heartbeat import ProcessHeartbeat
from connector.chat.redis_state import DEFAULT_PREFIX, RedisLiveState
from connector.chat.state import SqliteLiveState
from connector.chat.timers import LocalTimers, RedisTimers, Timers
from connector.crm.outbox import Handler, Outbox
from connector.crm.shared_outbox import RedisOutbox

__all__ = ["LiveParts", "open_live"]

log = logging.getLogger(__name__)

# A thread waits this long for a free Redis connection before the change answers
# `unavailable` (far above a relay's round trip; the pool is sized not to run out).
POOL_WAIT_SECS = 5.0


@dataclass
class LiveParts:
    """What one service process shares with the others (or keeps, when alone)."""

    state: SqliteLiveState | RedisLiveState
    bus: EventBus
    timers: Timers
    heartbeat: ProcessHeartbeat
    data_dir: Path
    client: redis.Redis | None = None
    prefix: str = DEFAULT_PREFIX
    process_id: str = field(default_factory=lambda: uuid.uuid4().hex)

    @property
    def shared(self) -> bool:
        """True on Redis: other processes may serve the same org."""
        return self.client is not None

    def outbox(self, handlers: Mapping[str, Handler]) -> Outbox | RedisOutbox:
        """The durable outbox for these handlers, next to the state."""
        if self.client is None:
            return Outbox(self.data_dir / "outbox.sqlite", handlers)
        return RedisOutbox(self.client, handlers, prefix=self.prefix, consumer=self.process_id)

    def close(self) -> None:
        try:
            self.heartbeat.stop()
        except redis.RedisError:
            # Redis is gone already: this process's counts lapse with its beat anyway.
            log.warning("could not forget this process's presence in Redis", exc_info=True)
        self.bus.close()
        self.state.close()
        if self.client is not None:
            self.client.close()


# Connections beyond the request threads: the bus, the sweeper, the presence ticker, the
# heartbeat, the outbox, the channel senders, record identification.
BACKGROUND_CONNECTIONS = 32


def open_live(data_dir: Path, redis_url: str | None = None, *, threads: int = 1000) -> LiveParts:
    """The parts for this process: on Redis when `redis_url` is given, else local.

    On Redis the connection pool holds one connection per request thread (`threads`, the
    server's CRMCHAT_THREADS) plus the background threads', and a thread finding it empty
    waits for one instead of failing: each relayed message is a Redis call made without
    any lock, so as many threads as the server runs may be in Redis at once."""
    process_id = uuid.uuid4().hex
    if not redis_url:
        state = SqliteLiveState(data_dir / "live.sqlite")
        return LiveParts(
            state=state,
            bus=LocalBus(),
            timers=LocalTimers(),
            heartbeat=ProcessHeartbeat(state, process_id=process_id),
            data_dir=data_dir,
            process_id=process_id,
        )
    pool = redis.BlockingConnectionPool.from_url(
        redis_url,
        decode_responses=True,
        max_connections=threads + BACKGROUND_CONNECTIONS,
        timeout=POOL_WAIT_SECS,
    )
    client = redis.Redis(connection_pool=pool)
    redis_state = RedisLiveState(client)
    return LiveParts(
        state=redis_state,
        bus=RedisBus(client),
        timers=RedisTimers(client),
        heartbeat=ProcessHeartbeat(redis_state, process_id=process_id),
        data_dir=data_dir,
        client=client,
        process_id=process_id,
    )
