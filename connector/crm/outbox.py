"""A durable outbox: writes to Dataverse that survive slow answers, outages and restarts.

The chat engine `enqueue`s an item (kind, key, JSON payload) and moves on; the item is in
SQLite (WAL, synchronous FULL) before `enqueue` returns. One worker thread (`start`) or a
test (`run_due`) hands each due item to the handler registered for its kind:

- success: the item is marked done, and only then. A crash between the handler's write
  and that mark runs the handler again after the restart, so handlers must be
  idempotent (`write_chat_activity` is: the activity id is the conversation id).
- transient failure: the item is tried again later, forever. The wait is the server's
  ``Retry-After`` when given, else 1, 2, 4, ... seconds capped at `MAX_BACKOFF_SECS`.
  Throttling, unavailability and network failures also hold back the rest of the pass
  until then: hammering a throttled Dataverse only makes the wait longer.
- permanent failure: the item is parked: kept with its error, logged, listed by
  `parked()`, counted by `parked_count()` (the settings page and `crmchat outbox list`
  show them), and run again only after `requeue_parked()` (e.g. once an admin fixed a
  privilege) or `rewrite_parked()` ("write it anyway", e.g. without a deleted regarding
  record). Nothing is dropped but by an admin's `drop_parked()`.

Which errors are transient::

    DataverseError
     ├── TooManyRequests, ServiceUnavailable, ConnectionFailed   transient, pause the pass
     ├── ServerError, Unauthorized, AuthError                    transient (this item)
     └── BadRequest, Forbidden, NotFound, PreconditionFailed...  permanent: parked
    any other exception (a bug, a malformed payload, no handler)   permanent: parked

`enqueue` is idempotent on (kind, key): a second enqueue of the same key, even after the
item was done, changes nothing. Done items are forgotten after `DONE_RETENTION_SECS`.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from connector.dataverse import (
    AuthError,
    ConnectionFailed,
    ServerError,
    ServiceUnavailable,
    TooManyRequests,
    Unauthorized,
)
from connector.private_files import make_private_file

__all__ = [
    "OutboxWorker",
    "BASE_BACKOFF_SECS",
    "DONE_RETENTION_SECS",
    "MAX_BACKOFF_SECS",
    "Handler",
    "Outbox",
    "is_pausing",
    "is_transient",
    "retry_delay",
]

log = logging.getLogger(__name__)

Handler = Callable[[dict[str, Any]], None]

BASE_BACKOFF_SECS = 1.0
MAX_BACKOFF_SECS = 300.0
# Done items are kept this long, so a late duplicate enqueue is still recognised.
DONE_RETENTION_SECS = 7 * 24 * 3600.0
# Pruning done items is cheap but needless on every pass.
PRUNE_EVERY_SECS = 3600.0
# The idle worker looks at the queue at least this often (enqueue wakes it sooner).
IDLE_POLL_SECS = 60.0
# Items taken per pass; the worker comes straight back for more.
PASS_SIZE = 100
_MAX_ERROR_CHARS = 1000

_PAUSING = (TooManyRequests, ServiceUnavailable, ConnectionFailed)
_TRANSIENT = (*_PAUSING, ServerError, Unauthorized, AuthError)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox_item (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    kind       TEXT NOT NULL,
    key        TEXT NOT NULL,
    payload    TEXT NOT NULL,
    state      TEXT NOT NULL,            -- pending | done | parked
    attempts   INTEGER NOT NULL DEFAULT 0,
    due_at     REAL NOT NULL,            -- clock() seconds
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    last_error TEXT NOT NULL DEFAULT '',
    UNIQUE (kind, key)
);
CREATE INDEX IF NOT EXISTS outbox_item_due ON outbox_item (state, due_at);
"""


def is_transient(error: BaseException) -> bool:
    """True when trying the same item again later may succeed (see module docstring)."""
    return isinstance(error, _TRANSIENT)


def _retry_after(error: BaseException) -> float | None:
    value = getattr(error, "retry_after", None)
    return float(value) if isinstance(value, int) and value >= 0 else None


def _describe(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"[:_MAX_ERROR_CHARS]


class OutboxWorker:
    """The background thread an outbox runs its due items on (`start`, `stop`); the
    outbox gives `_work`, which loops until `_stopping` and naps on `_wake`."""

    def __init__(self) -> None:
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def _work(self) -> None:
        raise NotImplementedError

    def start(self) -> None:
        """Run due items in a background thread until `stop`."""
        if self._thread is not None and self._thread.is_alive():
            return
        self._stopping.clear()
        self._thread = threading.Thread(target=self._work, name="crmchat-outbox", daemon=True)
        self._thread.start()

    def stop(self, *, timeout_secs: float = 30.0) -> None:
        """Stop the worker after the item it is running (if any)."""
        self._stopping.set()
        self._wake.set()
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(timeout_secs)


class Outbox(OutboxWorker):
    """Durable, retrying work items in SQLite at `path`, run by their kind's handler.

    Args:
        path: the SQLite file (created with its folder), e.g. ``<data>/outbox.sqlite``.
        handlers: kind -> function taking the payload; raising means "not done".
        clock: wall-clock seconds (due times are stored, so they must survive restarts).
        max_backoff_secs: the longest wait between two attempts without ``Retry-After``.
    """

    def __init__(
        self,
        path: Path,
        handlers: Mapping[str, Handler],
        *,
        clock: Callable[[], float] = time.time,
        max_backoff_secs: float = MAX_BACKOFF_SECS,
    ) -> None:
        self.path = Path(path)
        self._handlers = dict(handlers)
        self._clock = clock
        self._max_backoff_secs = max_backoff_secs
        self._db_lock = threading.Lock()  # guards the connection
        self._run_lock = threading.Lock()  # one pass at a time
        OutboxWorker.__init__(self)
        self._paused_until = float("-inf")
        self._last_prune = float("-inf")
        make_private_file(self.path)
        self._db = sqlite3.connect(
            self.path, timeout=30, isolation_level=None, check_same_thread=False
        )
        self._db.execute("PRAGMA journal_mode=WAL")
        # An enqueued item must survive a power cut, not only a process crash.
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(_SCHEMA)

    # ----- queue ------------------------------------------------------------------------

    def enqueue(self, kind: str, key: str, payload: Mapping[str, Any]) -> None:
        """Store an item to run; nothing happens if (kind, key) was enqueued before.

        Raises ValueError for a kind without a handler, TypeError for a payload that is
        not JSON.
        """
        if kind not in self._handlers:
            raise ValueError(f"no outbox handler for {kind!r}")
        body = json.dumps(dict(payload), ensure_ascii=False, separators=(",", ":"))
        now = self._clock()
        with self._db_lock:
            inserted = self._db.execute(
                "INSERT OR IGNORE INTO outbox_item"
                " (kind, key, payload, state, due_at, created_at, updated_at)"
                " VALUES (?, ?, ?, 'pending', ?, ?, ?)",
                (kind, key, body, now, now, now),
            ).rowcount
        if inserted:
            self._wake.set()

    def pending(self) -> int:
        """Items not yet done and not parked."""
        with self._db_lock:
            (count,) = self._db.execute(
                "SELECT COUNT(*) FROM outbox_item WHERE state = 'pending'"
            ).fetchone()
        return int(count)

    def parked(self) -> list[dict[str, Any]]:
        """Items that failed permanently: kind, key, payload, attempts, error, parked_at."""
        with self._db_lock:
            rows = self._db.execute(
                "SELECT kind, key, payload, attempts, last_error, updated_at FROM outbox_item"
                " WHERE state = 'parked' ORDER BY seq"
            ).fetchall()
        return [
            {
                "kind": kind,
                "key": key,
                "payload": json.loads(payload),
                "attempts": attempts,
                "error": error,
                "parked_at": parked_at,
            }
            for kind, key, payload, attempts, error, parked_at in rows
        ]

    def requeue_parked(self, *, kind: str | None = None, key: str | None = None) -> int:
        """Make parked items (all, or those of `kind` / `key`) due again; returns how many."""
        clauses, params = ["state = 'parked'"], []
        if kind is not None:
            clauses.append("kind = ?")
            params.append(kind)
        if key is not None:
            clauses.append("key = ?")
            params.append(key)
        now = self._clock()
        with self._db_lock:
            count = self._db.execute(
                "UPDATE outbox_item SET state = 'pending', due_at = ?, updated_at = ?"
                f" WHERE {' AND '.join(clauses)}",
                (now, now, *params),
            ).rowcount
        if count:
            self._wake.set()
        return int(count)

    def parked_count(self) -> int:
        """How many items are parked (shown to admins: nothing may be lost quietly)."""
        with self._db_lock:
            (count,) = self._db.execute(
                "SELECT COUNT(*) FROM outbox_item WHERE state = 'parked'"
            ).fetchone()
        return int(count)

    def rewrite_parked(self, key: str, payload: Mapping[str, Any]) -> bool:
        """Give the parked item `key` a new payload and make it due again.

        For "write it anyway": e.g. a chat whose regarding record was deleted is written
        without the link. Returns False when no item with that key is parked.
        """
        now = self._clock()
        with self._db_lock:
            count = self._db.execute(
                "UPDATE outbox_item SET state = 'pending', payload = ?, due_at = ?,"
                " updated_at = ? WHERE state = 'parked' AND key = ?",
                (json.dumps(dict(payload)), now, now, key),
            ).rowcount
        if count:
            self._wake.set()
        return bool(count)

    def drop_parked(self, key: str) -> bool:
        """Forget the parked item `key` for good (an admin's explicit choice)."""
        with self._db_lock:
            count = self._db.execute(
                "DELETE FROM outbox_item WHERE state = 'parked' AND key = ?", (key,)
            ).rowcount
        if count:
            log.warning("outbox: parked item %s dropped", key)
        return bool(count)

    # ----- running ----------------------------------------------------------------------

    def run_due(self) -> int:
        """One pass over the items due now; returns how many were done.

        Transient failures are rescheduled, permanent ones parked (module docstring).
        """
        with self._run_lock:
            now = self._clock()
            if now < self._paused_until:
                return 0
            with self._db_lock:
                rows = self._db.execute(
                    "SELECT seq, kind, key, payload, attempts FROM outbox_item"
                    " WHERE state = 'pending' AND due_at <= ? ORDER BY due_at, seq LIMIT ?",
                    (now, PASS_SIZE),
                ).fetchall()
            done = 0
            for seq, kind, key, payload, attempts in rows:
                if self._stopping.is_set():
                    break
                outcome = self._run_one(seq, kind, key, payload, attempts + 1)
                if outcome == "done":
                    done += 1
                elif outcome == "pause":
                    break
            self._prune()
            return done

    def _run_one(self, seq: int, kind: str, key: str, payload: str, attempt: int) -> str:
        handler = self._handlers.get(kind)
        try:
            if handler is None:
                raise LookupError(f"no outbox handler for {kind!r}")
            handler(json.loads(payload))
        except Exception as error:
            now = self._clock()
            if not is_transient(error):
                self._update(seq, "parked", attempt, now, now, _describe(error))
                log.error(
                    "outbox %s %s failed permanently, parked: %s", kind, key, _describe(error)
                )
                return "parked"
            delay = _retry_after(error)
            if delay is None:
                delay = min(self._max_backoff_secs, BASE_BACKOFF_SECS * 2 ** (attempt - 1))
            self._update(seq, "pending", attempt, now + delay, now, _describe(error))
            log.warning(
                "outbox %s %s failed (attempt %d, %s); trying again in %.0f s",
                kind,
                key,
                attempt,
                type(error).__name__,
                delay,
            )
            if isinstance(error, _PAUSING):
                self._paused_until = now + delay
                return "pause"
            return "retry"
        self._update(seq, "done", attempt, self._clock(), self._clock(), "")
        return "done"

    def _update(
        self, seq: int, state: str, attempts: int, due_at: float, now: float, error: str
    ) -> None:
        with self._db_lock:
            self._db.execute(
                "UPDATE outbox_item SET state = ?, attempts = ?, due_at = ?, updated_at = ?,"
                " last_error = ? WHERE seq = ?",
                (state, attempts, due_at, now, error, seq),
            )

    def _prune(self) -> None:
        now = self._clock()
        if now - self._last_prune < PRUNE_EVERY_SECS:
            return
        self._last_prune = now
        with self._db_lock:
            self._db.execute(
                "DELETE FROM outbox_item WHERE state = 'done' AND updated_at < ?",
                (now - DONE_RETENTION_SECS,),
            )

    def _idle_secs(self) -> float:
        """How long the worker may sleep: until the next item or the pause is due."""
        with self._db_lock:
            (next_due,) = self._db.execute(
                "SELECT MIN(due_at) FROM outbox_item WHERE state = 'pending'"
            ).fetchone()
        now = self._clock()
        wake_at = max(
            next_due if next_due is not None else now + IDLE_POLL_SECS, self._paused_until
        )
        return min(IDLE_POLL_SECS, max(0.0, wake_at - now))

    def _work(self) -> None:
        while not self._stopping.is_set():
            try:
                self.run_due()
                idle = self._idle_secs()
            except sqlite3.Error:
                log.exception("the outbox could not read its queue; trying again")
                idle = IDLE_POLL_SECS
            self._wake.wait(idle)
            self._wake.clear()

    def close(self) -> None:
        """Stop the worker and close the database."""
        self.stop()
        with self._db_lock:
            self._db.close()

    def __enter__(self) -> Outbox:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def is_pausing(error: BaseException) -> bool:
    """True when the error also holds back the rest of the pass (throttled, down, offline)."""
    return isinstance(error, _PAUSING)


def retry_delay(error: BaseException, attempt: int, max_backoff_secs: float) -> float:
    """Seconds before attempt `attempt` + 1: the server's Retry-After, else 1, 2, 4, ...
    capped at `max_backoff_secs` (the rule `Outbox` follows)."""
    delay = _retry_after(error)
    if delay is None:
        delay = min(max_backoff_secs, BASE_BACKOFF_SECS * 2 ** (attempt - 1))
    return delay
