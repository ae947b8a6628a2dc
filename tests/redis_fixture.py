"""Fixtures for a real Redis: Debian's `redis-server` on a free port in a temp folder.

- `redis_server`: a fresh `RedisServer` (no persistence), started; stopped afterwards.
- `persistent_redis`: the same with ``appendonly yes`` (fsync on every write), for the
  restart tests.
- `redis_url`: `redis_server`'s URL.
- `redis_client`: a client on `redis_server` (``decode_responses=True``).

`make test` installs redis-server when it is missing, as it does chromium. Without it
these fixtures fail with the install command, never skip silently.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

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
