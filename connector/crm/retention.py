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

The service's own live-chat store (connector/chat/state.py: `data/live.sqlite`, or Redis)
keeps an ended chat after its activity is queued, for what docs/protocol.md still reads
from it: the ended chat a visitor resumes (rating, end screen), the transcript download
and mail and the chat's files, all by a resume token that lasts 24 h
(`CHAT_TOKEN_MAX_AGE_SECS`); the agents' History card of a returning visitor; and, for a
messaging channel, the person's last message time and subscription (the reply window).
`drop_live_chats` (run by the same job) deletes a finished chat from it, with its
messages, files and consults, past its widget's or channel account's retention, and
otherwise once FINISHED_KEEP has passed, except a channel person's newest chat (the next
chat's reply window reads it). The outbox item was built with the whole transcript and
files when the chat finished, so the activity needs nothing left in the live store.

Every filter is built with `connector.dataverse.odata` (GUIDs and datetimes as literals).
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from connector.channels.accounts import ACCOUNTS_SET
from connector.chat.actions.channels import channel_visitor_id
from connector.chat.model import Conversation
from connector.chat.state import LiveState
from connector.crm import tables
from connector.crm.design import MAX_RETENTION_DAYS, DesignError, parse_design
from connector.dataverse import odata
from connector.dataverse.errors import DataverseError, NotFound

__all__ = [
    "FINISHED_KEEP",
    "RETENTION_EVERY_SECS",
    "PurgeResult",
    "RetentionJob",
    "delete_if_present",
    "drop_conversation",
    "drop_live_chats",
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


# A finished chat stays in the live store this long (unless its retention is shorter):
# well past the 24 h every resume token lasts, long enough for the History card to show
# the agents a returning visitor's chats of the last week. CRM keeps the activity.
FINISHED_KEEP = timedelta(days=7)


@dataclass(frozen=True)
class PurgeResult:
    chats: int
    notes: int
    live_chats: int = 0  # finished chats deleted from the live store


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


def _retention_of(
    conversation: Conversation, widget_days: Mapping[str, int], account_days: Mapping[str, int]
) -> timedelta | None:
    """The retention of a chat's widget, or of its channel account, if it has one."""
    if conversation.widget_id is not None:
        days = widget_days.get(conversation.widget_id.lower())
        return timedelta(days=days) if days else None
    for account_id, days in account_days.items():
        if (conversation.visitor_id or "").startswith(channel_visitor_id(account_id, "")):
            return timedelta(days=days)
    return None


def _needed(live: LiveState, conversation: Conversation) -> bool:
    """Whether a channel person's next chat reads this one: their newest."""
    if conversation.channel is None or conversation.visitor_id is None:
        return False
    newest = live.history(conversation.visitor_id)[:1]
    return bool(newest) and newest[0].conversation_id == conversation.conversation_id


def drop_conversation(live: LiveState, conversation: Conversation) -> bool:
    """Delete a finished chat and its consults from the live store (see the docstring)."""
    for consult_id in conversation.consult_ids:
        live.delete_conversation(consult_id)
    return live.delete_conversation(conversation.conversation_id)


def drop_live_chats(
    live: LiveState,
    *,
    now: datetime,
    widget_days: Mapping[str, int],
    account_days: Mapping[str, int],
    keep: timedelta = FINISHED_KEEP,
) -> int:
    """Delete the finished chats past their retention, or past `keep` when nothing needs
    them, from the live store; returns how many (a chat already gone is not counted)."""
    shortest = min(
        [keep, *(timedelta(days=d) for d in (*widget_days.values(), *account_days.values()))]
    )
    dropped = 0
    for conversation in live.finished_conversations(ended_before=now - shortest):
        assert conversation.ended_at is not None
        age = now - conversation.ended_at
        retention = _retention_of(conversation, widget_days, account_days)
        expired = retention is not None and age > retention
        if expired or (age > keep and not _needed(live, conversation)):
            dropped += drop_conversation(live, conversation)
    return dropped


def purge_expired_chats(
    client: Any, *, now: datetime, live: LiveState | None = None
) -> PurgeResult:
    """Delete the expired chats of every widget and channel account with a retention, and
    with `live` the finished chats of the live store (`drop_live_chats`); returns counts.

    Raises DataverseError when Dataverse cannot be read (the next run tries again).
    """
    chats = notes = 0
    widget_days = _retentions(client)
    account_days = _channel_retentions(client)
    whose = [
        (odata.eq("_crmchat_widgetid_value", uuid.UUID(widget_id)), days)
        for widget_id, days in widget_days.items()
    ]
    whose += [
        (
            odata.and_(
                odata.is_null("_crmchat_widgetid_value"),
                odata.startswith("crmchat_visitorid", channel_visitor_id(account_id, "")),
            ),
            days,
        )
        for account_id, days in account_days.items()
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
    live_chats = (
        drop_live_chats(live, now=now, widget_days=widget_days, account_days=account_days)
        if live is not None
        else 0
    )
    return PurgeResult(chats=chats, notes=notes, live_chats=live_chats)


class RetentionJob:
    """Runs `purge_expired_chats` every `every_secs` in a daemon thread (`start`, `stop`)."""

    def __init__(
        self,
        client: Any,
        *,
        live: LiveState | None = None,
        every_secs: float = RETENTION_EVERY_SECS,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._client = client
        self._live = live
        self._every_secs = every_secs
        self._clock = clock
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def run_once(self) -> PurgeResult | None:
        try:
            result = purge_expired_chats(self._client, now=self._clock(), live=self._live)
        except DataverseError as error:
            log.warning("retention run failed; trying again later: %s", error)
            return None
        if result.chats or result.notes or result.live_chats:
            log.info(
                "retention deleted %d chats and %d notes, and %d ended chats of the live state",
                result.chats,
                result.notes,
                result.live_chats,
            )
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


def init_app(app: Any, client: Any, live: LiveState | None = None) -> None:
    """Start the app's retention job (every process runs it; a run is idempotent)."""
    job = RetentionJob(client, live=live)
    app.extensions[_EXTENSION_KEY] = job
    job.start()


def stop(app: Any) -> None:
    """Stop the app's retention job, if it has one."""
    job = app.extensions.pop(_EXTENSION_KEY, None)
    if job is not None:
        job.stop()
