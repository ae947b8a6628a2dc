"""Which Dynamics 365 Sales / Customer Service tables the organization has.

The core solution imports into any Dataverse environment; lead, incident and
knowledgearticle exist only where Dynamics 365 Sales or Customer Service is installed
(and CRM Chat for Dynamics 365, `solution/dynamics365/`, then adds what uses them).
`AppTables.present()` asks `EntityDefinitions` once for the three and caches the answer
for `TTL_SECS` (an admin installing an app is rare; a restart or the next hour sees it).
The agent console hides Create lead, Create case and the knowledge panel for a missing
table, and the service refuses to create one (`records_unavailable`), instead of failing
on Dataverse's 404.

When Dataverse cannot be asked, the last answer stays; before the first answer every table
counts as present (the service behaves as before and Dataverse's own error says why), and
the next call asks again after `RETRY_SECS`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from connector.dataverse.errors import DataverseError

__all__ = ["APP_TABLES", "RETRY_SECS", "TTL_SECS", "AppTables"]

APP_TABLES = ("lead", "incident", "knowledgearticle")
TTL_SECS = 3600.0
RETRY_SECS = 30.0


class AppTables:
    """The cached answer to "which of APP_TABLES exist here"."""

    def __init__(
        self,
        client: Any,
        *,
        ttl_secs: float = TTL_SECS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._client = client
        self._ttl_secs = ttl_secs
        self._clock = clock
        self._lock = threading.Lock()
        self._present: frozenset[str] | None = None
        self._next_ask = float("-inf")

    def present(self) -> frozenset[str]:
        """The APP_TABLES this organization has."""
        with self._lock:
            if self._clock() >= self._next_ask:
                self._ask()
            return self._present if self._present is not None else frozenset(APP_TABLES)

    def has(self, table: str) -> bool:
        return table in self.present()

    def _ask(self) -> None:
        terms = " or ".join(f"LogicalName eq '{name}'" for name in APP_TABLES)
        try:
            answer = self._client.request(
                "GET", "EntityDefinitions", query=[("$select", "LogicalName"), ("$filter", terms)]
            ).json()
        except (DataverseError, ValueError):
            self._next_ask = self._clock() + RETRY_SECS
            return
        rows = answer.get("value", []) if isinstance(answer, dict) else []
        found = {str(row.get("LogicalName", "")).lower() for row in rows if isinstance(row, dict)}
        self._present = frozenset(found & set(APP_TABLES))
        self._next_ask = self._clock() + self._ttl_secs
