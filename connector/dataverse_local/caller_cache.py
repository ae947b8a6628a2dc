"""Callers remembered between requests, until anything they were made of changes.

Building a `Caller` (the user's row, roles and field security profiles held directly and
through teams) took five queries, on every request. The real service caches a user's
privileges too, and a role change reaches a user's requests without a sign-in. Here a
remembered caller is valid while the store's *security generation* is unchanged: SQLite
triggers (`install_security_triggers`) add one to `_meta.security` on every insert,
update or delete of the tables a caller is made of (system users, roles, teams, field
security profiles and the pairings between them). Triggers see every writer, this process
or another (the CLI) and raw SQL alike, so nothing can change a caller without the next
request noticing; each request pays one primary-key read of `_meta` instead of five
queries.

A store without the counter (never seeded) remembers nothing.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TypeVar

from connector.dataverse_local.store import Store, quote

__all__ = ["CallerCache", "install_security_triggers", "security_generation"]

_KEY = "security"
_OPERATIONS = ("INSERT", "UPDATE", "DELETE")
# Users remembered per store: more than any deployment's active users, small in memory.
MAX_REMEMBERED_CALLERS = 4096

T = TypeVar("T")


def install_security_triggers(store: Store, tables: Iterable[str]) -> None:
    """Count every change to `tables` (those that exist) in `_meta.security` (idempotent)."""
    with store.transaction() as db:
        db.execute("INSERT OR IGNORE INTO _meta (key, value) VALUES (?, '0')", (_KEY,))
        existing = {
            str(row[0]) for row in db.execute("SELECT name FROM sqlite_master WHERE type='table'")
        }
        for table in sorted(set(tables) & existing):
            for operation in _OPERATIONS:
                trigger = quote(f"_security_{table}_{operation.lower()}")
                db.execute(
                    f"CREATE TRIGGER IF NOT EXISTS {trigger} AFTER {operation} ON {quote(table)} "
                    "BEGIN UPDATE _meta SET value = CAST(value AS INTEGER) + 1 "
                    f"WHERE key = '{_KEY}'; END"
                )


def security_generation(store: Store) -> str | None:
    """The store's security generation (read now; None when the store has no counter)."""
    return store.get_meta(_KEY)


@dataclass
class CallerCache:
    """Values (callers) by user id, each kept with the generation it was built under."""

    _entries: dict[str, tuple[str, object]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def get(self, store: Store, user_id: str, build: Callable[[], T]) -> T:
        """`build()`'s value for `user_id`, remembered while the generation is unchanged.

        The generation is read before building, so a change made while building makes
        the next request build again rather than keep what was read half-way.
        """
        generation = security_generation(store)
        if generation is None:
            return build()
        with self._lock:
            entry = self._entries.get(user_id)
        if entry is not None and entry[0] == generation:
            return entry[1]  # type: ignore[return-value]
        value = build()
        with self._lock:
            if len(self._entries) >= MAX_REMEMBERED_CALLERS:
                self._entries.clear()
            self._entries[user_id] = (generation, value)
        return value
