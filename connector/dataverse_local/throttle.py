"""Dataverse's service protection limits for the embedded Dataverse (429 + `Retry-After`).

Two of the three real limits are enforced, per user: the number of requests in a sliding
window (default 6000 per 300 seconds, code `0x80072322`) and the number of requests in
flight at once (default 52, code `0x80072326`). The third, combined execution time, is not
enforced: the emulator's requests take milliseconds. A refused request is not counted, so
a client that honours `Retry-After` gets in when it comes back.

`Retry-After` is whole seconds, at least 1 (the Python SDK parses it with `int()`): for
the window, the time until the oldest counted request leaves it; for concurrency, 1.

    protection = ServiceProtection(max_requests=3, window_secs=2)
    with protection.admit(user_id):
        ...  # handle the request

Errors::

    Exception
    └── Throttled(retry_after_secs, code, message)   answer 429 with Retry-After
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable
from contextlib import AbstractContextManager
from types import TracebackType

__all__ = [
    "CONCURRENCY_LIMIT_CODE",
    "REQUEST_LIMIT_CODE",
    "ServiceProtection",
    "Throttled",
]

REQUEST_LIMIT_CODE = "0x80072322"
CONCURRENCY_LIMIT_CODE = "0x80072326"
# Dataverse's defaults (api-limits.md): 6000 requests per user per 300 s, 52 in flight.
DEFAULT_MAX_REQUESTS = 6000
DEFAULT_WINDOW_SECS = 300
DEFAULT_MAX_CONCURRENT = 52
# No in-flight request finishes at a known time, so a second is the shortest honest wait.
CONCURRENCY_RETRY_AFTER_SECS = 1


class Throttled(Exception):
    """A request is over a service protection limit; answer 429 with `Retry-After`."""

    status = 429

    def __init__(self, retry_after_secs: int, code: str, message: str) -> None:
        super().__init__(message)
        self.retry_after_secs = retry_after_secs
        self.code = code
        self.message = message


class _UserState:
    __slots__ = ("in_flight", "times")

    def __init__(self, max_requests: int) -> None:
        # maxlen bounds memory even if pruning lags; the window never needs more.
        self.times: deque[float] = deque(maxlen=max_requests)
        self.in_flight = 0


class _Slot:
    """The admitted request's concurrency slot; released once, on leaving the `with`."""

    def __init__(self, release: Callable[[], None]) -> None:
        self._release: Callable[[], None] | None = release

    def __enter__(self) -> None:
        return None

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._release is not None:
            release, self._release = self._release, None
            release()


class ServiceProtection:
    """Per-user request-rate and concurrency limits; thread-safe."""

    def __init__(
        self,
        *,
        max_requests: int = DEFAULT_MAX_REQUESTS,
        window_secs: float = DEFAULT_WINDOW_SECS,
        max_concurrent: int = DEFAULT_MAX_CONCURRENT,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_requests < 1 or window_secs <= 0 or max_concurrent < 1:
            raise ValueError("limits must be positive")
        self.max_requests = max_requests
        self.window_secs = window_secs
        self.max_concurrent = max_concurrent
        self._clock = clock
        self._lock = threading.Lock()
        self._users: dict[str, _UserState] = {}
        self._last_sweep = clock()

    def admit(self, user_id: str) -> AbstractContextManager[None]:
        """Count a request by `user_id` and take a concurrency slot until the `with` ends.

        Raises Throttled (and counts nothing) when the user is over either limit.
        """
        user_key = user_id.strip("{}").lower()
        with self._lock:
            now = self._clock()
            self._sweep(now)
            state = self._users.get(user_key)
            if state is None:
                state = self._users[user_key] = _UserState(self.max_requests)
            self._prune(state, now)
            if len(state.times) >= self.max_requests:
                wait = state.times[0] + self.window_secs - now
                raise Throttled(
                    max(1, math.ceil(wait)),
                    REQUEST_LIMIT_CODE,
                    f"Number of requests exceeded the limit of {self.max_requests} "
                    f"over time window of {_secs(self.window_secs)} seconds.",
                )
            if state.in_flight >= self.max_concurrent:
                raise Throttled(
                    CONCURRENCY_RETRY_AFTER_SECS,
                    CONCURRENCY_LIMIT_CODE,
                    f"Number of concurrent requests exceeded the limit of {self.max_concurrent}.",
                )
            state.times.append(now)
            state.in_flight += 1
        return _Slot(lambda: self._release(user_key))

    def remaining_requests(self, user_id: str) -> int:
        """How many more requests `user_id` may make in the current window."""
        user_key = user_id.strip("{}").lower()
        with self._lock:
            state = self._users.get(user_key)
            if state is None:
                return self.max_requests
            self._prune(state, self._clock())
            return self.max_requests - len(state.times)

    def tracked_users(self) -> int:
        """How many users' counters are held (for tests of the memory bound)."""
        with self._lock:
            return len(self._users)

    def _release(self, user_key: str) -> None:
        with self._lock:
            state = self._users.get(user_key)
            if state is not None and state.in_flight > 0:
                state.in_flight -= 1

    def _prune(self, state: _UserState, now: float) -> None:
        horizon = now - self.window_secs
        while state.times and state.times[0] <= horizon:
            state.times.popleft()

    def _sweep(self, now: float) -> None:
        """Drop users with nothing in the window and nothing in flight, once per window."""
        if now - self._last_sweep < self.window_secs:
            return
        self._last_sweep = now
        for key in list(self._users):
            state = self._users[key]
            self._prune(state, now)
            if not state.times and state.in_flight == 0:
                del self._users[key]


def _secs(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)
