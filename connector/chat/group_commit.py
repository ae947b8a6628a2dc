"""`GroupCommit`: one writer thread that commits what many threads queue, a batch at a time.

The relay path (`message.send`) must not write the disk while holding the engine's lock: a
commit that waits for the disk (a WAL checkpoint, writeback) would stall every chat. So a
sender queues its message here and waits *outside* the lock; the writer takes everything
queued, writes it in one transaction, commits once, and only then runs each item's
`then` callback, in the order the items were queued. `then` is where the message is
published: nothing is acknowledged before it is committed, and the events of one
conversation go out in the order of their seqs (a single thread runs them in commit order).

A batch that fails (the disk is full, the file read-only) fails every item in it with the
error, and nothing of it is stored: the senders answer an error, the client resends.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from typing import Any, Generic, TypeVar

__all__ = ["MAX_BATCH", "GroupCommit"]

log = logging.getLogger(__name__)

Item = TypeVar("Item")
Result = TypeVar("Result")

# Items per transaction: far above one commit's worth of messages at thousands a second,
# small enough that a batch's callbacks never hold the first sender back for long.
MAX_BATCH = 512


class GroupCommit(Generic[Item, Result]):
    """`submit(item, then)` -> a Future of `then(result)`; `write(items)` commits a batch and
    returns one result per item, in order (module docstring)."""

    def __init__(self, write: Callable[[Sequence[Item]], list[Result]], *, name: str) -> None:
        self._write = write
        self._name = name
        self._queue: queue.SimpleQueue[tuple[Item, Callable[[Result], Any], Future[Any]] | None] = (
            queue.SimpleQueue()
        )
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._closed = False

    def submit(self, item: Item, then: Callable[[Result], Any]) -> Future[Any]:
        """Queue `item`; the Future gets `then(result)` once its batch is committed (or the
        batch's error). Raises RuntimeError after `close`."""
        future: Future[Any] = Future()
        with self._lock:
            if self._closed:
                raise RuntimeError(f"{self._name} is closed")
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
                self._thread.start()
            self._queue.put((item, then, future))
        return future

    def close(self) -> None:
        """Write what is queued, then stop the thread."""
        with self._lock:
            self._closed = True
            thread, self._thread = self._thread, None
        if thread is not None:
            self._queue.put(None)
            thread.join(timeout=10)

    def _run(self) -> None:
        stopping = False
        while not stopping:
            first = self._queue.get()
            if first is None:
                return
            batch = [first]
            while len(batch) < MAX_BATCH:
                try:
                    more = self._queue.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    stopping = True
                    break
                batch.append(more)
            self._commit(batch)

    def _commit(self, batch: list[tuple[Item, Callable[[Result], Any], Future[Any]]]) -> None:
        try:
            results = self._write([item for item, _, _ in batch])
        except Exception as error:  # noqa: BLE001 - every sender of the batch hears it
            log.warning("%s: a batch of %d failed: %s", self._name, len(batch), error)
            for _, _, future in batch:
                future.set_exception(error)
            return
        for (_, then, future), result in zip(batch, results, strict=True):
            try:
                future.set_result(then(result))
            except Exception as error:  # noqa: BLE001 - the sender hears it
                future.set_exception(error)
