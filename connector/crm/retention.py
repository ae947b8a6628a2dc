"""Retention: finished chats older than a widget's `privacy.retention_days`, or than a
messaging-channel account's `crmchat_retentiondays`, are deleted from Dataverse, with the
notes (annotations) attached to them.

`purge_expired_chats(client, now=...)` reads every widget's design and every channel
account, and per widget or account with a retention deletes each `crmchat_chat` activity
of it whose `actualend` lies more than that many days before `now`, notes first. A
channel chat has no widget; it is the account's by its visitor id (`channel:<account
id>:<person>`, connector/chat/actions/channels.py). It is idempotent: a record already
gone (another process, an admin, the last run) is skipped, so a run that stopped halfway
finishes on the next one. `RetentionJob` runs it in a background thread every
RETENTION_EVERY_SECS; `crmchat privacy purge` runs it once.

Every filter is built with `connector.dataverse.odata` (GUIDs and datetimes as literals).
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from connector.channels.accounts import ACCOUNTS_SET
from connector.chat.actions.channels import channel_visitor_id
from connector.crm import tables
from connector.crm.design import MAX_RETENTION_DAYS, DesignError, parse_design
from connector.dataverse import odata
from connector.dataverse.errors import DataverseError, NotFound

__all__ = [
    "RETENTION_EVERY_SECS",
    "PurgeResult",
    "RetentionJob",
    "delete_if_present",
    "init_app",
    "purge_expired_chats",
    "stop",
]

log = logging.getLogger(__name__)

# Retention is counted in days: an hourly run deletes a chat within an hour of its day.
RETENTION_EVERY_SECS = 3600.0
# Records per page read; deleting goes one by one (a failure stops only that record).
_PAGE_SIZE = 500
ANNOTATIONS = "annotations"


@dataclass(frozen=True)
class PurgeResult:
    chats: int
    notes: int


def _retentions(client: Any) -> dict[str, int]:
    """Widget id -> retention in days, for the widgets that have one."""
    out: dict[str, int] = {}
    for row in client.list(
        tables.WIDGETS, select=["crmchat_widgetid", "crmchat_design"], page_size=_PAGE_SIZE
    ):
        try:
            days = parse_design(row.get("crmchat_design")).privacy.retention_days
        except DesignError:
            continue  # a broken design keeps everything; the Directory logs it
        if days > 0:
            out[str(row["crmchat_widgetid"]).lower()] = days
    return out


def _channel_retentions(client: Any) -> dict[str, int]:
    """Channel account id -> retention in days, for the accounts that have one."""
    out: dict[str, int] = {}
    for row in client.list(
        ACCOUNTS_SET,
        select=["crmchat_channelaccountid", "crmchat_retentiondays"],
        filter=odata.gt("crmchat_retentiondays", 0),
        page_size=_PAGE_SIZE,
    ):
        days = row.get("crmchat_retentiondays")
        if isinstance(days, int) and 0 < days <= MAX_RETENTION_DAYS:
            out[str(row["crmchat_channelaccountid"]).lower()] = days
    return out


def delete_if_present(client: Any, entity_set: str, record_id: str) -> bool:
    """Delete one record; False when it was already gone (so a rerun finishes the job)."""
    try:
        client.delete(entity_set, record_id)
    except NotFound:
        return False  # already gone: nothing to do
    return True


def purge_expired_chats(client: Any, *, now: datetime) -> PurgeResult:
    """Delete the expired chats of every widget with a retention; returns the counts.

    Raises DataverseError when Dataverse cannot be read (the next run tries again).
    """
    chats = notes = 0
    whose = [
        (odata.eq("_crmchat_widgetid_value", uuid.UUID(widget_id)), days)
        for widget_id, days in _retentions(client).items()
    ]
    whose += [
        (
            odata.and_(
                odata.is_null("_crmchat_widgetid_value"),
                odata.startswith("crmchat_visitorid", channel_visitor_id(account_id, "")),
            ),
            days,
        )
        for account_id, days in _channel_retentions(client).items()
    ]
    for owner, days in whose:
        cutoff = now - timedelta(days=days)
        expired = client.list(
            tables.CHATS,
            select=["activityid"],
            filter=odata.and_(owner, odata.lt("actualend", cutoff)),
            page_size=_PAGE_SIZE,
        )
        for chat_id in [str(row["activityid"]) for row in expired]:
            attached = client.list(
                ANNOTATIONS,
                select=["annotationid"],
                filter=odata.eq("_objectid_value", uuid.UUID(chat_id)),
                page_size=_PAGE_SIZE,
            )
            for note_id in [str(row["annotationid"]) for row in attached]:
                notes += delete_if_present(client, ANNOTATIONS, note_id)
            chats += delete_if_present(client, tables.CHATS, chat_id)
    return PurgeResult(chats=chats, notes=notes)


class RetentionJob:
    """Runs `purge_expired_chats` every `every_secs` in a daemon thread (`start`, `stop`)."""

    def __init__(
        self,
        client: Any,
        *,
        every_secs: float = RETENTION_EVERY_SECS,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._client = client
        self._every_secs = every_secs
        self._clock = clock
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def run_once(self) -> PurgeResult | None:
        try:
            result = purge_expired_chats(self._client, now=self._clock())
        except DataverseError as error:
            log.warning("retention run failed; trying again later: %s", error)
            return None
        if result.chats or result.notes:
            log.info("retention deleted %d chats and %d notes", result.chats, result.notes)
        return result

    def _work(self) -> None:
        while not self._stopping.is_set():
            self.run_once()
            self._stopping.wait(self._every_secs)

    def start(self) -> None:
        if self._thread is not None and self._thread.is_alive():
            return
        self._stopping.clear()
        self._thread = threading.Thread(target=self._work, name="crmchat-retention", daemon=True)
        self._thread.start()

    def stop(self, *, timeout_secs: float = 10.0) -> None:
        self._stopping.set()
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(timeout_secs)


_EXTENSION_KEY = "crmchat.retention"


def init_app(app: Any, client: Any) -> None:
    """Start the app's retention job (every process runs it; a run is idempotent)."""
    job = RetentionJob(client)
    app.extensions[_EXTENSION_KEY] = job
    job.start()


def stop(app: Any) -> None:
    """Stop the app's retention job, if it has one."""
    job = app.extensions.pop(_EXTENSION_KEY, None)
    if job is not None:
        job.stop()
