"""Fixtures for a real Redis: Debian's `redis-server` on a free port in a temp folder.

- `redis_server`: a fresh `RedisServer` (no persistence), started; stopped afterwards.
- `persistent_redis`: the same with ``appendonly yes`` (fsync on every write), for the
  restart tests.
- `redis_url`: `redis_server`'s URL.
- `redis_client`: a client on `redis_server` (``decode_responses=True``).
- `live_spec` / `live_state`: run a test twice, on `SqliteLiveState` (the single-process
  default) and on `RedisLiveState`; the spec (``sqlite:<path>`` / ``redis:<url>``) lets a
  spawned process open the same state (tests/live_workers.py).

`make test` installs redis-server when it is missing, as it does chromium. Without it
these fixtures fail with the install command, never skip silently.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from live_workers import open_state

from connector.redis_server import RedisServer


def _started(folder: Path, *, appendonly: bool) -> RedisServer:
    server = RedisServer(folder, appendonly=appendonly)
    server.start()
    return server


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    server = _started(tmp_path / "redis", appendonly=False)
    yield server
    server.stop()


@pytest.fixture
def persistent_redis(tmp_path: Path) -> Iterator[RedisServer]:
    server = _started(tmp_path / "redis-aof", appendonly=True)
    yield server
    server.stop()


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    return redis_server.url


@pytest.fixture
def redis_client(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    yield client
    client.close()


@pytest.fixture(params=["sqlite", "redis"])
def live_spec(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:{tmp_path / 'live.sqlite'}"
    return f"redis:{request.getfixturevalue('redis_url')}"


@pytest.fixture
def live_state(live_spec: str) -> Iterator[Any]:
    live = open_state(live_spec)
    yield live
    live.close()
