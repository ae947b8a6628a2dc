"""Health: `/livez` (the process answers), `/readyz` (it can do its job), `/healthz`.

`/readyz` checks, in order of cost: the data folder takes a write (a probe file, fsynced),
the live state takes a write (one row committed; on Redis, `CRMCHAT_REDIS_URL`, one SET
with an expiry on a client of its own that gives up after `REDIS_PROBE_SECS`, so a Redis
that is away, read-only (a replica after a failover) or refusing writes (MISCONF, OOM)
fails the probe within a second instead of holding it), and Dataverse answers `WhoAmI` — asked
at most every `CRMCHAT_READYZ_DATAVERSE_SECS`, the answer cached in between, so a load
balancer probing every second costs Dataverse nothing. Any failure answers 503 with the
reasons; the first failure after a success is logged as one line (and the recovery too),
so a probe every second does not flood the log.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import redis
from flask import Blueprint, current_app
from redis.backoff import NoBackoff
from redis.retry import Retry

from connector.chat.redis_state import DEFAULT_PREFIX
from connector.dataverse import DataverseError
from connector.services import services_of

__all__ = ["REDIS_PROBE_SECS", "Readiness", "bp", "disk_problem", "redis_problem", "stop"]

log = logging.getLogger(__name__)

bp = Blueprint("health", __name__)

READINESS_KEY = "crmchat.readiness"
# A load balancer's probe times out after a few seconds: Redis answers in well under a
# millisecond when it is there, so one second means it is not.
REDIS_PROBE_SECS = 1.0
# The probe key lives a little longer than a probe interval (it only proves the write).
REDIS_PROBE_TTL_MS = 60_000


def disk_problem(data_dir: Path) -> str | None:
    """Why `data_dir` cannot be written, in one line; None when a probe file was written."""
    probe = data_dir / f".write-probe-{uuid.uuid4().hex}"
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, b"crmchat write probe\n" * 64)  # a little data: a full disk says so
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError as error:
        return f"the data folder {data_dir} cannot be written: {error.strerror or error}"
    finally:
        try:
            probe.unlink(missing_ok=True)
        except OSError:
            pass
    return None


def redis_probe_client(url: str) -> redis.Redis:
    """A client for `redis_problem`: short timeouts, no retries (a probe must be quick)."""
    return redis.Redis.from_url(
        url,
        socket_timeout=REDIS_PROBE_SECS,
        socket_connect_timeout=REDIS_PROBE_SECS,
        retry=Retry(NoBackoff(), 0),
        decode_responses=True,
    )


def redis_problem(client: redis.Redis, key: str) -> str | None:
    """Why the shared live state cannot take a write, in one line (no password in it);
    None when `key` was written."""
    kwargs = client.connection_pool.connection_kwargs
    where = f"{kwargs.get('host', 'localhost')}:{kwargs.get('port', 6379)}"
    try:
        client.set(key, datetime.now(UTC).isoformat(), px=REDIS_PROBE_TTL_MS)
    except (redis.ConnectionError, redis.TimeoutError, OSError) as error:
        return f"Redis at {where} is unreachable ({error})"
    except redis.RedisError as error:
        # Reachable but refusing: a read-only replica, a failed snapshot (MISCONF), OOM.
        return f"Redis at {where} refuses writes ({error})"
    return None


class Readiness:
    """The checks behind `/readyz`, with the Dataverse answer cached (thread-safe)."""

    def __init__(self, app: Any, *, dataverse_secs: float) -> None:
        self._app = app
        self._dataverse_secs = dataverse_secs
        self._lock = threading.Lock()
        self._dataverse_checked = float("-inf")
        self._dataverse_problem: str | None = None
        self._was_ready = True
        self._redis: redis.Redis | None = None

    def problems(self) -> dict[str, str]:
        settings = services_of(self._app).settings
        problems: dict[str, str] = {}
        disk = disk_problem(settings.data_dir)
        if disk is not None:
            problems["disk"] = disk
        state = services_of(self._app).engine.state
        check = getattr(state, "check_writable", None)
        if check is not None:
            try:
                check()
            except sqlite3.Error as error:
                problems["live_state"] = f"the live state cannot be written: {error}"
        redis_url = settings.redis_url.get_secret_value() if settings.redis_url else None
        if redis_url:
            with self._lock:
                if self._redis is None:
                    self._redis = redis_probe_client(redis_url)
                client = self._redis
            live = services_of(self._app).live
            process = live.process_id if live is not None else "local"
            prefix = live.prefix if live is not None else DEFAULT_PREFIX
            problem = redis_problem(client, f"{prefix}readyz:{process}")
            if problem is not None:
                problems["redis"] = problem
        dataverse = self._dataverse()
        if dataverse is not None:
            problems["dataverse"] = dataverse
        self._log_change(problems)
        return problems

    def close(self) -> None:
        with self._lock:
            client, self._redis = self._redis, None
        if client is not None:
            client.close()

    def _dataverse(self) -> str | None:
        with self._lock:
            if time.monotonic() - self._dataverse_checked < self._dataverse_secs:
                return self._dataverse_problem
            try:
                services_of(self._app).dataverse.who_am_i()
                self._dataverse_problem = None
            except DataverseError as error:
                self._dataverse_problem = f"Dataverse is unreachable ({error.status})"
            self._dataverse_checked = time.monotonic()
            return self._dataverse_problem

    def _log_change(self, problems: dict[str, str]) -> None:
        ready = not problems
        with self._lock:
            was_ready, self._was_ready = self._was_ready, ready
        if was_ready and not ready:
            log.error("not ready: %s", "; ".join(problems.values()))
        elif ready and not was_ready:
            log.info("ready again")


def readiness_of(app: Any) -> Readiness:
    readiness: Readiness | None = app.extensions.get(READINESS_KEY)
    if readiness is None:
        settings = services_of(app).settings
        readiness = app.extensions.setdefault(
            READINESS_KEY, Readiness(app, dataverse_secs=settings.readyz_dataverse_secs)
        )
    return readiness


def stop(app: Any) -> None:
    """Close the readiness probe's Redis client (stop_app)."""
    readiness: Readiness | None = app.extensions.pop(READINESS_KEY, None)
    if readiness is not None:
        readiness.close()


@bp.get("/livez")
def livez() -> dict[str, str]:
    """The process answers HTTP; no Dataverse or disk call."""
    return {"status": "ok"}


@bp.get("/readyz")
def readyz() -> tuple[dict[str, object], int]:
    problems = readiness_of(current_app).problems()
    if problems:
        return {"status": "not_ready", "problems": problems}, 503
    return {"status": "ok"}, 200


@bp.get("/healthz")
def healthz() -> tuple[dict[str, object], int]:
    settings = services_of(current_app).settings
    client = services_of(current_app).dataverse
    try:
        client.who_am_i()
    except DataverseError as error:
        return {"status": "degraded", "dataverse": f"unreachable ({error.status})"}, 503
    mode = "embedded" if settings.embedded else "environment"
    return {"status": "ok", "dataverse": mode}, 200
