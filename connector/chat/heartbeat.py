"""`ProcessHeartbeat`: keeps this process's presence counted, and buries dead processes.

Every service process beats (`LivePrimitives.presence_beat`) every `BEAT_SECS` with a TTL
of `PRESENCE_TTL_SECS`, so its socket counts stay in the totals. A process that dies (kill
-9, a lost machine) stops beating; once its TTL lapses its counts no longer count, without
anyone's help. Each beat also looks for such processes: for each, one survivor (the one
that takes the lease ``reap:<process>``) calls `on_dead(process_id)` (the engine tells the
watchers who left with it) and then forgets the process's counts. Its timers and outbox
items need nothing here: they come due again by themselves (connector/chat/timers.py,
connector/crm/shared_outbox.py).
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Callable

from connector.chat.state import LivePrimitives

__all__ = ["BEAT_SECS", "PRESENCE_TTL_SECS", "ProcessHeartbeat"]

log = logging.getLogger(__name__)

BEAT_SECS = 2.0
# Five missed beats: a long GC pause or a slow Redis answer is not a death.
PRESENCE_TTL_SECS = 10.0


class ProcessHeartbeat:
    """Beats for `process_id` in a background thread; see the module docstring."""

    def __init__(
        self,
        state: LivePrimitives,
        *,
        process_id: str | None = None,
        on_dead: Callable[[str], None] | None = None,
        beat_secs: float = BEAT_SECS,
        ttl_secs: float = PRESENCE_TTL_SECS,
    ) -> None:
        self.state = state
        self.process_id = process_id or uuid.uuid4().hex
        self.on_dead = on_dead  # may be set after construction (the engine comes later)
        self._beat_secs = beat_secs
        self._ttl_secs = ttl_secs
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def beat(self) -> list[str]:
        """One beat: stay alive, bury the dead; returns the processes this one buried."""
        self.state.presence_beat(self.process_id, self._ttl_secs)
        buried = []
        for dead in self.state.dead_processes():
            owner = self.process_id
            if not self.state.acquire_lease(f"reap:{dead}", owner, self._ttl_secs):
                continue  # another survivor is on it
            try:
                if dead not in self.state.dead_processes():
                    continue  # buried by a survivor that held the lease just before
                if self.on_dead is not None:
                    self.on_dead(dead)
                self.state.presence_forget(dead)
                buried.append(dead)
            finally:
                self.state.release_lease(f"reap:{dead}", owner)
        return buried

    def _run(self) -> None:
        while not self._stopping.wait(self._beat_secs):
            try:
                self.beat()
            except Exception:
                log.warning("the presence heartbeat failed; beating again", exc_info=True)

    def start(self) -> None:
        """Beat now, then every `beat_secs` until `stop`."""
        self.beat()
        if self._thread is None:
            self._stopping.clear()
            self._thread = threading.Thread(target=self._run, name="crmchat-heartbeat", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        """Stop beating and forget this process's counts (its sockets are closing)."""
        self._stopping.set()
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(timeout=5)
        self.state.presence_forget(self.process_id)
