"""The websockets this process holds open, by kind: counted for the metrics, and told to
reconnect (closed with a code) when the process shuts down."""

from __future__ import annotations

import logging
import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

__all__ = ["close_all", "counts", "track"]

log = logging.getLogger(__name__)

_lock = threading.Lock()
_open: dict[int, tuple[str, Any]] = {}


@contextmanager
def track(ws: Any, kind: str) -> Iterator[None]:
    """Hold `ws` (of `kind`, "visitor" or "agent") in the registry while the block runs."""
    with _lock:
        _open[id(ws)] = (kind, ws)
    try:
        yield
    finally:
        with _lock:
            _open.pop(id(ws), None)


def counts() -> Counter[str]:
    """Open sockets by kind."""
    with _lock:
        return Counter(kind for kind, _ in _open.values())


def close_all(code: int, reason: str) -> int:
    """Close every open socket with `code`; returns how many were told."""
    with _lock:
        sockets = [ws for _, ws in _open.values()]
    for ws in sockets:
        try:
            ws.close(reason=code, message=reason)
        except Exception:  # noqa: BLE001 - already gone: nothing to tell
            log.debug("socket already closed")
    return len(sockets)
