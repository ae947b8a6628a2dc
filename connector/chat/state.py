"""The live chat's durable state: `LiveState` (the interface) and `SqliteLiveState`.

What must survive a restart of the service is here: conversations with their
participants, messages (with their per-conversation `seq` and the sender's `client_id`),
the ended chats still waiting for their rating, the agents' chosen status, and the
visitors' presence records (first seen, name, page). Which websockets are open is not
stored: after a restart every client reconnects.

`SqliteLiveState` keeps one connection in WAL mode behind a lock. Every write is its own
transaction and is committed before the method returns; messages are appended by one
writer thread on a second connection, a transaction per batch (`append_message_later`,
connector/chat/group_commit.py), and announced only once committed, so a message is
durable before anyone is told about it. `synchronous=NORMAL` in WAL mode survives a crash
of the process (what a restart is); only a power loss may drop the last transactions.
`RedisLiveState` (connector/chat/redis_state.py) replaces it when several processes serve
one org.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NamedTuple, Protocol, TypeVar

from connector.chat.group_commit import GroupCommit
from connector.chat.model import (
    AgentStatus,
    Conversation,
    ConversationKind,
    ConversationState,
    HistoryEntry,
    Message,
    Participant,
    SenderKind,
    VisitorPresence,
)
from connector.private_files import make_private_file

__all__ = [
    "AppendResult",
    "DuplicateMessage",
    "LivePrimitives",
    "LiveState",
    "SqliteLiveState",
    "derive_message_fields",
]


class DuplicateMessage(Exception):
    """A message with this client_id (or seq) is already stored in the conversation."""

    def __init__(self, conversation_id: str, client_id: str) -> None:
        super().__init__(f"{client_id} is already stored in {conversation_id}")
        self.conversation_id = conversation_id
        self.client_id = client_id


T = TypeVar("T")


class LiveState(Protocol):
    """Where conversations, messages and presence live."""

    def save_conversation(self, conversation: Conversation) -> None:
        """Insert or replace `conversation` (committed on return)."""

    def conversation(self, conversation_id: str) -> Conversation | None:
        """The conversation, or None."""

    def unfinished_conversations(self) -> list[Conversation]:
        """Open conversations and ended visitor chats whose activity is not queued yet."""

    def add_message(self, conversation: Conversation, message: Message) -> None:
        """Store `message` (committed on return). The conversation's `last_seq`,
        `last_visitor_message_at` and `waiting_since` are not written here: loading a
        conversation derives them from its messages. Raises DuplicateMessage when the
        client_id (or seq) is taken."""

    def append_message_later(self, draft: Message, then: Callable[[AppendResult], T]) -> Future[T]:
        """Store `draft` with the next seq of its conversation (`draft.seq` is ignored) or,
        when its client_id is already stored there, find that message; then call
        `then(result)` once it is committed, in commit order. The caller may wait for the
        Future outside its locks (the relay path): SQLite commits in groups on one writer
        thread (connector/chat/group_commit.py)."""

    def message_by_client_id(self, conversation_id: str, client_id: str) -> Message | None:
        """The message this sender already sent with `client_id`, if any."""

    def messages(self, conversation_id: str, *, since_seq: int = 0) -> list[Message]:
        """Messages with seq greater than `since_seq`, in seq order."""

    def history(self, visitor_id: str, *, exclude: str | None = None) -> list[HistoryEntry]:
        """The visitor's ended chats, newest first (at most HISTORY_LIMIT)."""

    def finished_conversations(
        self, *, ended_before: datetime, visitor_id: str | None = None
    ) -> list[Conversation]:
        """Ended visitor chats whose activity is queued (`finished`), ended before
        `ended_before` (of `visitor_id` only, when given): what `delete_conversation` may
        drop. Loaded without their messages (`last_seq` etc. not derived)."""

    def delete_conversation(self, conversation_id: str) -> bool:
        """Delete an ended chat that needs no more writing (its activity queued, or an
        agents' chat, which has none) with its messages and files; False when there is
        none or it is still open or unfinished (those are never deleted)."""

    def save_attachment(self, conversation_id: str, attachment_id: str, data: bytes) -> None:
        """Keep a file sent in the chat (committed on return)."""

    def attachment_data(self, conversation_id: str, attachment_id: str) -> bytes | None:
        """A file sent in the chat, or None."""

    def save_visitor(self, presence: VisitorPresence) -> None:
        """Insert or replace a visitor's presence record."""

    def visitor(self, visitor_id: str) -> VisitorPresence | None:
        """The stored presence record (with connections = 0)."""

    def delete_visitor(self, visitor_id: str) -> bool:
        """Delete the stored presence record; False when there is none."""

    def save_agent_status(self, agent_id: str, status: AgentStatus) -> None:
        """Remember the status the agent chose."""

    def agent_statuses(self) -> dict[str, AgentStatus]:
        """Every remembered agent status."""

    def save_agent_idle(self, agent_id: str, since: datetime) -> None:
        """Remember since when the agent waits for work (routing's longest idle first)."""

    def agent_idle_times(self) -> dict[str, datetime]:
        """Every remembered idle time."""

    def close(self) -> None:
        """Release the storage."""


class AppendResult(NamedTuple):
    """What `append_message` stored: the message with its seq, or the one already there."""

    message: Message
    duplicate: bool  # the client_id was taken: `message` is the stored one


class LivePrimitives(Protocol):
    """The atomic steps several service processes need (docs/scale-out.md).

    `SqliteLiveState` (one process, the default) and `RedisLiveState` (several processes)
    implement them with the same meaning, so the engine has one code path. Each is atomic
    on its own; none waits for Dataverse.
    """

    def append_message(self, draft: Message) -> AppendResult:
        """Store `draft` with the next seq of its conversation (`draft.seq` is ignored),
        or, when its client_id is already stored there, return that message unchanged."""

    def claim_accept(self, conversation_id: str, agent_id: str) -> str:
        """Claim the waiting chat for `agent_id`; the first claim wins for good. Returns
        the winner (== `agent_id` when this call won)."""

    def acquire_lease(self, name: str, owner: str, ttl_secs: float) -> bool:
        """Take the short lease `name` (e.g. one conversation) for `owner`; False when
        someone else holds it. It lapses by itself after `ttl_secs` (a dead process)."""

    def release_lease(self, name: str, owner: str) -> bool:
        """Give the lease back; False when `owner` no longer held it (it had lapsed)."""

    def presence_beat(self, process_id: str, ttl_secs: float) -> None:
        """This process is alive for `ttl_secs` more; its presence counts stay counted."""

    def presence_change(self, process_id: str, member: str, delta: int) -> int:
        """Add `delta` to this process's open sockets for `member` (a visitor or agent
        id); returns the member's total over every live process."""

    def presence_counts(self) -> dict[str, int]:
        """Every member with open sockets on a live process -> how many."""

    def presence_forget(self, process_id: str) -> None:
        """Drop a process's counts (it stopped; its sockets are gone)."""

    def dead_processes(self) -> list[str]:
        """Processes whose heartbeat lapsed (their sockets are gone): a survivor tells
        who left, takes over their work and `presence_forget`s them."""

    def swap_availability(self, widget_id: str, available: bool) -> bool:
        """Record whether the widget can start a chat; True only for the one caller that
        changed it, the one that tells the widget's visitors (`availability`)."""

    def claim_once(self, key: str, ttl_secs: float) -> bool:
        """True for exactly one caller of `key` until `ttl_secs` after that claim, False
        for every other (of any process): who does a one-off job every process hears
        about (e.g. send a channel reply, docs/channels.md)."""


# Enough earlier chats for the agent to recognise a returning visitor.
HISTORY_LIMIT = 10
# SQLite waits this long for a lock held by another connection (e.g. a backup).
BUSY_TIMEOUT_MS = 5000

_SCHEMA = """
CREATE TABLE IF NOT EXISTS conversation (
    id TEXT PRIMARY KEY,
    visitor_id TEXT,
    state TEXT NOT NULL,
    finished INTEGER NOT NULL DEFAULT 0,
    data TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS conversation_visitor ON conversation (visitor_id, state);
CREATE INDEX IF NOT EXISTS conversation_unfinished ON conversation (state, finished);
CREATE TABLE IF NOT EXISTS message (
    conversation_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    client_id TEXT NOT NULL,
    sender_kind TEXT NOT NULL,
    sender_id TEXT NOT NULL,
    sender_name TEXT NOT NULL,
    text TEXT NOT NULL,
    sent_at TEXT NOT NULL,
    attachment TEXT,
    PRIMARY KEY (conversation_id, seq),
    UNIQUE (conversation_id, client_id)
);
-- The files sent in chats (connector/chat/actions/attachments.py), until written to CRM.
CREATE TABLE IF NOT EXISTS attachment (
    conversation_id TEXT NOT NULL,
    attachment_id TEXT NOT NULL,
    data BLOB NOT NULL,
    PRIMARY KEY (conversation_id, attachment_id)
);
CREATE TABLE IF NOT EXISTS visitor (
    visitor_id TEXT PRIMARY KEY,
    data TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS agent_status (
    agent_id TEXT PRIMARY KEY,
    status TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS agent_idle (
    agent_id TEXT PRIMARY KEY,
    since TEXT NOT NULL
);
-- One row, rewritten by /readyz: proves the file can still be written.
CREATE TABLE IF NOT EXISTS write_probe (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    at TEXT NOT NULL
);
"""

# The tables behind `LivePrimitives` (times are time.time() seconds).
_PRIMITIVES_SCHEMA = """
CREATE TABLE IF NOT EXISTS accept_claim (
    conversation_id TEXT PRIMARY KEY,
    agent_id TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS lease (
    name TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    expires_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS live_process (
    process_id TEXT PRIMARY KEY,
    expires_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS widget_availability (
    widget_id TEXT PRIMARY KEY,
    available INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS once_claim (
    key TEXT PRIMARY KEY,
    expires_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS once_claim_expiry ON once_claim (expires_at);
CREATE TABLE IF NOT EXISTS presence_count (
    process_id TEXT NOT NULL,
    member TEXT NOT NULL,
    count INTEGER NOT NULL,
    PRIMARY KEY (process_id, member)
);
"""


def _time(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _parse(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def _conversation_to_json(c: Conversation) -> str:
    return json.dumps(
        {
            "kind": c.kind.value,
            "state": c.state.value,
            "started_at": _time(c.started_at),
            "widget_id": c.widget_id,
            "visitor_id": c.visitor_id,
            "visitor_name": c.visitor_name,
            "visitor_fields": c.visitor_fields,
            "context": c.context,
            "page": c.page,
            "ip": c.ip,
            "participants": [p.to_dict() for p in c.participants],
            "accepted_at": _time(c.accepted_at),
            "ended_at": _time(c.ended_at),
            "ended_by": c.ended_by,
            "owner_agent_id": c.owner_agent_id,
            "rating": c.rating,
            "regarding": c.regarding,
            "last_visitor_message_at": _time(c.last_visitor_message_at),
            "waiting_since": _time(c.waiting_since),
            "last_seq": c.last_seq,
            "start_client_id": c.start_client_id,
            "finish_due_at": _time(c.finish_due_at),
            "finished": c.finished,
            "topic_id": c.topic_id,
            "identity": c.identity,
            "contact": c.contact,
            "labels": c.labels,
            "timed_out": c.timed_out,
            "requester_user_id": c.requester_user_id,
            "channel": c.channel,
            "declined_agent_ids": c.declined_agent_ids,
            "consent": c.consent,
            "disposition": c.disposition,
            "ringing_agent_id": c.ringing_agent_id,
            "ring_started_at": _time(c.ring_started_at),
            "consult_of": c.consult_of,
            "consult_ids": c.consult_ids,
            "wrapup_until": _time(c.wrapup_until),
            "finish_held": c.finish_held,
            "postponed_until": _time(c.postponed_until),
            "important": c.important,
            "visitor_read_seq": c.visitor_read_seq,
            "agent_read_seq": c.agent_read_seq,
        }
    )


def _conversation_from_row(conversation_id: str, data: str) -> Conversation:
    d: dict[str, Any] = json.loads(data)
    started_at = _parse(d["started_at"])
    assert started_at is not None
    return Conversation(
        conversation_id=conversation_id,
        kind=ConversationKind(d["kind"]),
        state=ConversationState(d["state"]),
        started_at=started_at,
        widget_id=d["widget_id"],
        visitor_id=d["visitor_id"],
        visitor_name=d["visitor_name"],
        visitor_fields=d["visitor_fields"],
        context=d["context"],
        page=d["page"],
        ip=d["ip"],
        participants=[Participant.from_dict(p) for p in d["participants"]],
        accepted_at=_parse(d["accepted_at"]),
        ended_at=_parse(d["ended_at"]),
        ended_by=d["ended_by"],
        owner_agent_id=d["owner_agent_id"],
        rating=d["rating"],
        regarding=d["regarding"],
        last_visitor_message_at=_parse(d["last_visitor_message_at"]),
        waiting_since=_parse(d["waiting_since"]),
        last_seq=d["last_seq"],
        start_client_id=d["start_client_id"],
        finish_due_at=_parse(d["finish_due_at"]),
        finished=d["finished"],
        topic_id=d.get("topic_id"),
        identity=d.get("identity"),
        contact=d.get("contact"),
        labels=list(d.get("labels") or []),
        timed_out=bool(d.get("timed_out")),
        requester_user_id=d.get("requester_user_id"),
        channel=d.get("channel"),
        declined_agent_ids=list(d.get("declined_agent_ids") or []),
        consent=d.get("consent"),
        disposition=d.get("disposition"),
        ringing_agent_id=d.get("ringing_agent_id"),
        ring_started_at=_parse(d.get("ring_started_at")),
        consult_of=d.get("consult_of"),
        consult_ids=list(d.get("consult_ids") or []),
        wrapup_until=_parse(d.get("wrapup_until")),
        finish_held=bool(d.get("finish_held")),
        postponed_until=_parse(d.get("postponed_until")),
        important=bool(d.get("important")),
        visitor_read_seq=int(d.get("visitor_read_seq") or 0),
        agent_read_seq=int(d.get("agent_read_seq") or 0),
    )


def derive_message_fields(conversation: Conversation, messages: Sequence[Any]) -> Conversation:
    """Bring `last_seq`, `last_visitor_message_at` and `waiting_since` up to date from the
    conversation's messages (`seq`, `sender_kind`, `sent_at`, in seq order).

    Every `LiveState` derives them the same way when it loads a conversation.
    """
    if not messages:
        return conversation
    conversation.last_seq = messages[-1]["seq"]
    waiting_since: datetime | None = conversation.started_at
    for message in messages:
        if message["sender_kind"] == SenderKind.VISITOR.value:
            conversation.last_visitor_message_at = _parse(message["sent_at"])
            if waiting_since is None:
                waiting_since = _parse(message["sent_at"])
        elif message["sender_kind"] == SenderKind.AGENT.value:
            waiting_since = None
    if conversation.state is ConversationState.ENDED:
        waiting_since = None
    conversation.waiting_since = waiting_since
    return conversation


def _visitor_to_json(presence: VisitorPresence) -> str:
    return json.dumps(
        {
            "widget_id": presence.widget_id,
            "first_seen": _time(presence.first_seen),
            "last_seen": _time(presence.last_seen),
            "name": presence.name,
            "page": presence.page,
            "ip": presence.ip,
            "conversation_id": presence.conversation_id,
        }
    )


def _visitor_from_json(visitor_id: str, data: str) -> VisitorPresence:
    d = json.loads(data)
    first_seen, last_seen = _parse(d["first_seen"]), _parse(d["last_seen"])
    assert first_seen is not None and last_seen is not None
    return VisitorPresence(
        visitor_id=visitor_id,
        widget_id=d["widget_id"],
        first_seen=first_seen,
        last_seen=last_seen,
        name=d["name"],
        page=d["page"],
        ip=d["ip"],
        conversation_id=d["conversation_id"],
    )


def _insert_message(db: sqlite3.Connection, message: Message) -> None:
    db.execute(
        "INSERT INTO message (conversation_id, seq, client_id, sender_kind, sender_id,"
        " sender_name, text, sent_at, attachment) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            message.conversation_id,
            message.seq,
            message.client_id,
            message.sender_kind.value,
            message.sender_id,
            message.sender_name,
            message.text,
            _time(message.sent_at),
            json.dumps(message.attachment) if message.attachment else None,
        ),
    )


def _append_one(db: sqlite3.Connection, draft: Message) -> AppendResult:
    """`append_message` inside the caller's transaction."""
    rows = db.execute(
        "SELECT * FROM message WHERE conversation_id = ? AND client_id = ?",
        (draft.conversation_id, draft.client_id),
    ).fetchall()
    if rows:
        return AppendResult(_message_from_row(rows[0]), True)
    (last,) = db.execute(
        "SELECT COALESCE(MAX(seq), 0) FROM message WHERE conversation_id = ?",
        (draft.conversation_id,),
    ).fetchone()
    message = replace(draft, seq=int(last) + 1)
    _insert_message(db, message)
    return AppendResult(message, False)


def _message_from_row(row: sqlite3.Row) -> Message:
    sent_at = _parse(row["sent_at"])
    assert sent_at is not None
    return Message(
        conversation_id=row["conversation_id"],
        seq=row["seq"],
        client_id=row["client_id"],
        sender_kind=SenderKind(row["sender_kind"]),
        sender_id=row["sender_id"],
        sender_name=row["sender_name"],
        text=row["text"],
        sent_at=sent_at,
        attachment=json.loads(row["attachment"]) if row["attachment"] else None,
    )


class SqliteLiveState:
    """`LiveState` in one SQLite file (WAL). Thread-safe; see the module docstring."""

    def __init__(self, path: Path) -> None:
        make_private_file(path)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(
            path, check_same_thread=False, isolation_level=None, timeout=BUSY_TIMEOUT_MS / 1000
        )
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)
        columns = {row[1] for row in self._db.execute("PRAGMA table_info(message)")}
        if "attachment" not in columns:  # a live.sqlite from before attachments
            self._db.execute("ALTER TABLE message ADD COLUMN attachment TEXT")
        self._db.executescript(_PRIMITIVES_SCHEMA)
        # Messages are appended on their own connection by one thread, a transaction per
        # batch (`append_message_later`): readers in WAL mode never wait for its commits.
        self._writer_db = sqlite3.connect(
            path, check_same_thread=False, isolation_level=None, timeout=BUSY_TIMEOUT_MS / 1000
        )
        self._writer_db.row_factory = sqlite3.Row
        self._writer_db.execute("PRAGMA synchronous=NORMAL")
        self._appends: GroupCommit[Message, AppendResult] = GroupCommit(
            self._append_batch, name="crmchat-live-writer"
        )

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def _query(self, sql: str, params: tuple[Any, ...] = ()) -> list[sqlite3.Row]:
        with self._lock:
            return self._db.execute(sql, params).fetchall()

    def _write_conversation(self, db: sqlite3.Connection, c: Conversation) -> None:
        db.execute(
            "INSERT OR REPLACE INTO conversation (id, visitor_id, state, finished, data)"
            " VALUES (?, ?, ?, ?, ?)",
            (
                c.conversation_id,
                c.visitor_id,
                c.state.value,
                int(c.finished),
                _conversation_to_json(c),
            ),
        )

    def save_conversation(self, conversation: Conversation) -> None:
        with self._transaction() as db:
            self._write_conversation(db, conversation)

    def conversation(self, conversation_id: str) -> Conversation | None:
        rows = self._query("SELECT id, data FROM conversation WHERE id = ?", (conversation_id,))
        return self._load(rows[0]) if rows else None

    def unfinished_conversations(self) -> list[Conversation]:
        rows = self._query(
            "SELECT id, data FROM conversation WHERE state != 'ended'"
            " OR (finished = 0 AND visitor_id IS NOT NULL)"
        )
        return [self._load(row) for row in rows]

    def _load(self, row: sqlite3.Row) -> Conversation:
        """The stored conversation with its per-message fields brought up to date."""
        conversation = _conversation_from_row(row["id"], row["data"])
        messages = self._query(
            "SELECT seq, sender_kind, sent_at FROM message WHERE conversation_id = ? ORDER BY seq",
            (conversation.conversation_id,),
        )
        return derive_message_fields(conversation, messages)

    def add_message(self, conversation: Conversation, message: Message) -> None:
        # One INSERT, committed on its own: the relay path's only write. The conversation's
        # per-message fields are derived from the messages when it is loaded.
        try:
            with self._lock:
                _insert_message(self._db, message)
        except sqlite3.IntegrityError as error:
            raise DuplicateMessage(message.conversation_id, message.client_id) from error

    def message_by_client_id(self, conversation_id: str, client_id: str) -> Message | None:
        rows = self._query(
            "SELECT * FROM message WHERE conversation_id = ? AND client_id = ?",
            (conversation_id, client_id),
        )
        return _message_from_row(rows[0]) if rows else None

    def messages(self, conversation_id: str, *, since_seq: int = 0) -> list[Message]:
        rows = self._query(
            "SELECT * FROM message WHERE conversation_id = ? AND seq > ? ORDER BY seq",
            (conversation_id, since_seq),
        )
        return [_message_from_row(row) for row in rows]

    def save_attachment(self, conversation_id: str, attachment_id: str, data: bytes) -> None:
        with self._transaction() as db:
            db.execute(
                "INSERT OR REPLACE INTO attachment (conversation_id, attachment_id, data)"
                " VALUES (?, ?, ?)",
                (conversation_id, attachment_id, data),
            )

    def attachment_data(self, conversation_id: str, attachment_id: str) -> bytes | None:
        rows = self._query(
            "SELECT data FROM attachment WHERE conversation_id = ? AND attachment_id = ?",
            (conversation_id, attachment_id),
        )
        return bytes(rows[0]["data"]) if rows else None

    def history(self, visitor_id: str, *, exclude: str | None = None) -> list[HistoryEntry]:
        rows = self._query(
            "SELECT c.id, c.data, (SELECT COUNT(*) FROM message m WHERE m.conversation_id = c.id"
            " AND m.sender_kind != 'system') AS message_count FROM conversation c"
            " WHERE c.visitor_id = ? AND c.state = 'ended' AND c.id != ?",
            (visitor_id, exclude or ""),
        )
        entries = []
        for row in rows:
            c = _conversation_from_row(row["id"], row["data"])
            agents = [p.name for p in c.participants if p.kind == "agent"]
            entries.append(
                HistoryEntry(
                    conversation_id=c.conversation_id,
                    started_at=c.started_at,
                    ended_at=c.ended_at,
                    agent=", ".join(agents),
                    message_count=row["message_count"],
                )
            )
        entries.sort(key=lambda e: e.started_at, reverse=True)
        return entries[:HISTORY_LIMIT]

    def finished_conversations(
        self, *, ended_before: datetime, visitor_id: str | None = None
    ) -> list[Conversation]:
        # ended_at is stored as UTC ISO text, which sorts as the times do.
        sql = (
            "SELECT id, data FROM conversation WHERE state = 'ended' AND finished = 1"
            " AND visitor_id IS NOT NULL AND json_extract(data, '$.ended_at') < ?"
        )
        params: tuple[Any, ...] = (ended_before.astimezone(UTC).isoformat(),)
        if visitor_id is not None:
            sql += " AND visitor_id = ?"
            params += (visitor_id,)
        rows = self._query(sql, params)
        return [_conversation_from_row(row["id"], row["data"]) for row in rows]

    def delete_conversation(self, conversation_id: str) -> bool:
        with self._transaction() as db:
            deleted = db.execute(
                "DELETE FROM conversation WHERE id = ? AND state = 'ended'"
                " AND (finished = 1 OR visitor_id IS NULL)",
                (conversation_id,),
            ).rowcount
            if deleted:
                for table in ("message", "attachment", "accept_claim"):
                    db.execute(f"DELETE FROM {table} WHERE conversation_id = ?", (conversation_id,))
        return bool(deleted)

    def save_visitor(self, presence: VisitorPresence) -> None:
        data = _visitor_to_json(presence)
        with self._transaction() as db:
            db.execute(
                "INSERT OR REPLACE INTO visitor (visitor_id, data) VALUES (?, ?)",
                (presence.visitor_id, data),
            )

    def visitor(self, visitor_id: str) -> VisitorPresence | None:
        rows = self._query("SELECT data FROM visitor WHERE visitor_id = ?", (visitor_id,))
        return _visitor_from_json(visitor_id, rows[0]["data"]) if rows else None

    def delete_visitor(self, visitor_id: str) -> bool:
        with self._transaction() as db:
            deleted = db.execute("DELETE FROM visitor WHERE visitor_id = ?", (visitor_id,))
        return bool(deleted.rowcount)

    def save_agent_status(self, agent_id: str, status: AgentStatus) -> None:
        with self._transaction() as db:
            db.execute(
                "INSERT OR REPLACE INTO agent_status (agent_id, status) VALUES (?, ?)",
                (agent_id, status.value),
            )

    def agent_statuses(self) -> dict[str, AgentStatus]:
        rows = self._query("SELECT agent_id, status FROM agent_status")
        return {row["agent_id"]: AgentStatus(row["status"]) for row in rows}

    def save_agent_idle(self, agent_id: str, since: datetime) -> None:
        with self._transaction() as db:
            db.execute(
                "INSERT OR REPLACE INTO agent_idle (agent_id, since) VALUES (?, ?)",
                (agent_id, since.isoformat()),
            )

    def agent_idle_times(self) -> dict[str, datetime]:
        rows = self._query("SELECT agent_id, since FROM agent_idle")
        return {row["agent_id"]: datetime.fromisoformat(row["since"]) for row in rows}

    def check_writable(self) -> None:
        """Commit one small write; raises `sqlite3.Error` when the file cannot take it."""
        with self._transaction() as db:
            db.execute(
                "INSERT OR REPLACE INTO write_probe (id, at) VALUES (1, ?)",
                (datetime.now(UTC).isoformat(),),
            )

    def unfinished_by_state(self) -> dict[str, int]:
        """How many of `unfinished_conversations` are in each state (the metrics' gauge).

        An ended agent-to-agent chat is never written to CRM: it is not counted."""
        rows = self._query(
            "SELECT state, COUNT(*) AS n FROM conversation WHERE state != 'ended'"
            " OR (finished = 0 AND visitor_id IS NOT NULL) GROUP BY state"
        )
        return {str(row["state"]): int(row["n"]) for row in rows}

    def close(self) -> None:
        self._appends.close()
        self._writer_db.close()
        with self._lock:
            self._db.close()

    # ----- LivePrimitives (docs/scale-out.md) -----------------------------------------

    def append_message(self, draft: Message) -> AppendResult:
        # Behind the relay's queued appends, so seqs are given in the order asked.
        return self.append_message_later(draft, lambda result: result).result()

    def append_message_later(self, draft: Message, then: Callable[[AppendResult], T]) -> Future[T]:
        return self._appends.submit(draft, then)

    def _append_batch(self, drafts: Sequence[Message]) -> list[AppendResult]:
        """One transaction for the batch (the writer thread): each draft gets the next seq
        of its conversation, or the stored message when its client_id is taken."""
        db = self._writer_db
        db.execute("BEGIN IMMEDIATE")
        try:
            results = [_append_one(db, draft) for draft in drafts]
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise
        return results

    def claim_accept(self, conversation_id: str, agent_id: str) -> str:
        with self._transaction() as db:
            db.execute(
                "INSERT OR IGNORE INTO accept_claim (conversation_id, agent_id) VALUES (?, ?)",
                (conversation_id, agent_id),
            )
            (winner,) = db.execute(
                "SELECT agent_id FROM accept_claim WHERE conversation_id = ?", (conversation_id,)
            ).fetchone()
        return str(winner)

    def acquire_lease(self, name: str, owner: str, ttl_secs: float) -> bool:
        now = time.time()
        with self._transaction() as db:
            taken = db.execute(
                "INSERT INTO lease (name, owner, expires_at) VALUES (?, ?, ?)"
                " ON CONFLICT (name) DO UPDATE SET owner = excluded.owner,"
                " expires_at = excluded.expires_at WHERE lease.expires_at <= ?",
                (name, owner, now + ttl_secs, now),
            ).rowcount
        return bool(taken)

    def release_lease(self, name: str, owner: str) -> bool:
        with self._transaction() as db:
            released = db.execute(
                "DELETE FROM lease WHERE name = ? AND owner = ? AND expires_at > ?",
                (name, owner, time.time()),
            ).rowcount
        return bool(released)

    def presence_beat(self, process_id: str, ttl_secs: float) -> None:
        with self._transaction() as db:
            db.execute(
                "INSERT OR REPLACE INTO live_process (process_id, expires_at) VALUES (?, ?)",
                (process_id, time.time() + ttl_secs),
            )

    def presence_change(self, process_id: str, member: str, delta: int) -> int:
        with self._transaction() as db:
            db.execute(
                "INSERT INTO presence_count (process_id, member, count) VALUES (?, ?, ?)"
                " ON CONFLICT (process_id, member) DO UPDATE"
                " SET count = MAX(0, presence_count.count + excluded.count)",
                (process_id, member, delta),
            )
            db.execute("DELETE FROM presence_count WHERE count <= 0")
            (total,) = db.execute(
                "SELECT COALESCE(SUM(c.count), 0) FROM presence_count c JOIN live_process p"
                " ON p.process_id = c.process_id WHERE c.member = ? AND p.expires_at > ?",
                (member, time.time()),
            ).fetchone()
        return int(total)

    def presence_counts(self) -> dict[str, int]:
        rows = self._query(
            "SELECT c.member, SUM(c.count) AS total FROM presence_count c JOIN live_process p"
            " ON p.process_id = c.process_id WHERE p.expires_at > ? GROUP BY c.member",
            (time.time(),),
        )
        return {row["member"]: int(row["total"]) for row in rows if row["total"] > 0}

    def presence_forget(self, process_id: str) -> None:
        with self._transaction() as db:
            db.execute("DELETE FROM presence_count WHERE process_id = ?", (process_id,))
            db.execute("DELETE FROM live_process WHERE process_id = ?", (process_id,))

    def swap_availability(self, widget_id: str, available: bool) -> bool:
        with self._transaction() as db:
            changed = db.execute(
                "INSERT INTO widget_availability (widget_id, available) VALUES (?, ?)"
                " ON CONFLICT (widget_id) DO UPDATE SET available = excluded.available"
                " WHERE widget_availability.available != excluded.available",
                (widget_id, int(available)),
            ).rowcount
        return bool(changed)

    def claim_once(self, key: str, ttl_secs: float) -> bool:
        now = time.time()
        with self._transaction() as db:
            # Lapsed claims go as new ones come (indexed), so the table holds one TTL's worth.
            db.execute("DELETE FROM once_claim WHERE expires_at <= ?", (now,))
            taken = db.execute(
                "INSERT OR IGNORE INTO once_claim (key, expires_at) VALUES (?, ?)",
                (key, now + ttl_secs),
            ).rowcount
        return bool(taken)

    def dead_processes(self) -> list[str]:
        rows = self._query(
            "SELECT process_id FROM live_process WHERE expires_at <= ? ORDER BY process_id",
            (time.time(),),
        )
        return [row["process_id"] for row in rows]
