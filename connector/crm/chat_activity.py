"""A finished chat as one completed `crmchat_chat` activity.

`chat_activity_payload` (pure) builds the create body; `write_chat_activity` sends it.
The activity's id is derived from the conversation id with an HMAC of the service's secret
(`chat_activity_id`): chosen by the service, so writing a chat is idempotent and safe to
retry from the outbox, yet unknowable to anyone else, so no agent can pre-create a forged
record for a live chat (in the real platform a custom activity has no privileges of its
own: every role that may create an activity may create this one):

1. create-only upsert ``PATCH crmchat_chats(<activity id>)`` with
   ``If-None-Match: *`` carrying every column (subject = the topics, widget, regarding,
   owner = the accepting agent, actual start/end/duration, visitor info and participants
   (JSON for machines, and the same as readable text for the form), rating,
   transcript, context, visitor id, and the report figures: topic, agent, wait before
   answer and duration in seconds, and the UTC day the chat started), with its
   activity parties in the same body (deep insert of `crmchat_chat_activity_parties`):
   the customer contact or lead as From (1), the agents' system users as To (2);
2. ``PATCH`` statecode 1 / statuscode 2 (Completed). Dataverse does not take an
   activity's state on create, so closing is its own request.

Two requests per finished chat. When step 1 answers 412, one ``GET`` reads the record's
state and creator. Created by the service's own user: an earlier attempt (which may have
crashed before step 2), so the close is sent only if it is still open and a retried write
converges without doubling anything. Created by anyone else: a forgery, logged and left
alone; the real transcript goes to the next derived id.

Text columns have length limits, counted by Dataverse in UTF-16 code units. The
transcript keeps whole messages from the start and ends with a line saying how many were
left out; JSON columns that would not fit have their long strings shortened, or are
replaced by ``{"truncated": true}``.

`FinishedChat.to_dict` / `from_dict` give the JSON the outbox stores;
`chat_activity_handler(client)` is the outbox handler for `CHAT_ACTIVITY_KIND`.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import math
import unicodedata
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from connector.crm import tables
from connector.crm.dispositions import MAX_DISPOSITION_CHARS
from connector.crm.regarding import Regarding
from connector.dataverse import DataverseClient, PreconditionFailed
from connector.dataverse.odata import guid, quote

__all__ = [
    "CHAT_ACTIVITY_KIND",
    "ForgedChatActivity",
    "chat_activity_id",
    "MAX_TRANSCRIPT_CHARS",
    "FinishedChat",
    "chat_activity_handler",
    "chat_activity_payload",
    "format_participants",
    "format_transcript",
    "format_visitor",
    "utf16_len",
    "write_chat_activity",
    "chat_notes",
    "write_notes",
]

log = logging.getLogger(__name__)

_CREATED_BY = "_createdby_value"
# Ids tried per chat: a forged record on one id moves the transcript to the next.
MAX_ID_ATTEMPTS = 3

# The outbox item kind for a finished chat.
CHAT_ACTIVITY_KIND = "chat_activity"

# Column limits from solution/customizations.xml (UTF-16 code units, as Dataverse counts).
MAX_SUBJECT_CHARS = 400
MAX_TRANSCRIPT_CHARS = 1_048_576
MAX_JSON_CHARS = 100_000
MAX_READABLE_CHARS = 4_000  # crmchat_visitordetails, crmchat_participantnames
MAX_VISITOR_ID_CHARS = 100
MAX_LABELS_CHARS = 4000
# The standard activity `prioritycode` options (0 Low, 1 Normal, 2 High).
PRIORITY_NORMAL = 1
PRIORITY_HIGH = 2
# The standard `annotation` table's columns (subject 500, notetext 100,000).
MAX_NOTE_SUBJECT_CHARS = 500
MAX_NOTE_TEXT_CHARS = 100_000
MAX_NOTE_FILENAME_CHARS = 255
# Strings inside an over-long JSON column are cut to these lengths, in turn.
_JSON_STRING_STEPS = (1000, 200, 50)
# Room kept free at the end of a cut transcript for the line that says so.
_TRUNCATION_RESERVE = 200

STATE_COMPLETED = 1
STATUS_COMPLETED = 2
_CLOSE = {"statecode": STATE_COMPLETED, "statuscode": STATUS_COMPLETED}


def _utc(value: datetime) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError("naive datetime: chats are timed in UTC")
    return value.astimezone(UTC)


def _parse_time(value: object) -> datetime | None:
    if isinstance(value, datetime):
        return _utc(value)
    if isinstance(value, str) and value:
        try:
            return _utc(datetime.fromisoformat(value.replace("Z", "+00:00")))
        except ValueError:
            return None
    return None


def _iso(value: datetime | None) -> str | None:
    return None if value is None else _utc(value).isoformat().replace("+00:00", "Z")


@dataclass(frozen=True)
class FinishedChat:
    """Everything the activity records about one ended visitor chat."""

    conversation_id: str  # the activity id is derived from it (chat_activity_id)
    widget_id: str | None
    topic_names: list[str]
    visitor_name: str
    visitor_fields: dict[str, str]
    visitor_id: str
    page: str
    ip: str
    started_at: datetime
    accepted_at: datetime | None
    ended_at: datetime
    owner_user_id: str | None  # systemuserid of the agent who accepted
    participants: list[dict[str, Any]]  # [{"kind","id","name"}]
    rating: int | None
    transcript: list[dict[str, Any]]  # protocol messages: sender{kind,name}, text, sent_at
    regarding: Regarding | None
    context: dict[str, Any] = field(default_factory=dict)
    labels: list[str] = field(default_factory=list)  # label names
    identity: dict[str, Any] | None = None  # the verified identity, when there was one
    contact: dict[str, str] | None = None  # {"id","name"} from record identification
    topic_id: str | None = None  # the topic reports count it under
    agent_id: str | None = None  # crmchat_agentid of the agent who accepted
    consent: dict[str, str] | None = None  # {"text", "at"}: what the visitor agreed to
    disposition: str | None = None  # the agent's closing choice (connector/crm/dispositions.py)
    important: bool = False  # an agent marked it: the activity's `prioritycode` is High
    # Consult threads (connector/chat/actions/consults.py): [{"subject", "transcript"}],
    # each written as an internal note on the activity.
    consults: list[dict[str, Any]] = field(default_factory=list)
    # Files sent in the chat (connector/chat/actions/attachments.py): [{"name", "type",
    # "sender", "documentbody"}] (base64), each written as a note with the file.
    files: list[dict[str, str]] = field(default_factory=list)

    def __post_init__(self) -> None:
        guid(self.conversation_id)
        for moment in (self.started_at, self.accepted_at, self.ended_at):
            if moment is not None:
                _utc(moment)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (times as ISO 8601 UTC), as stored in the outbox."""
        return {
            "conversation_id": self.conversation_id,
            "widget_id": self.widget_id,
            "topic_names": list(self.topic_names),
            "visitor_name": self.visitor_name,
            "visitor_fields": dict(self.visitor_fields),
            "visitor_id": self.visitor_id,
            "page": self.page,
            "ip": self.ip,
            "started_at": _iso(self.started_at),
            "accepted_at": _iso(self.accepted_at),
            "ended_at": _iso(self.ended_at),
            "owner_user_id": self.owner_user_id,
            "participants": [dict(p) for p in self.participants],
            "rating": self.rating,
            "transcript": [_json_message(m) for m in self.transcript],
            "regarding": None if self.regarding is None else self.regarding.to_dict(),
            "context": dict(self.context),
            "labels": list(self.labels),
            "identity": self.identity,
            "contact": self.contact,
            "topic_id": self.topic_id,
            "agent_id": self.agent_id,
            "consent": self.consent,
            "disposition": self.disposition,
            "important": self.important,
            "consults": [
                {
                    "subject": str(c["subject"]),
                    "transcript": [_json_message(m) for m in c["transcript"]],
                }
                for c in self.consults
            ],
            "files": [dict(f) for f in self.files],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FinishedChat:
        """Read `to_dict`'s form back. Raises ValueError/KeyError/TypeError if malformed."""
        started = _parse_time(data["started_at"])
        ended = _parse_time(data["ended_at"])
        if started is None or ended is None:
            raise ValueError("a finished chat needs its start and end times")
        regarding = data.get("regarding")
        return cls(
            conversation_id=str(data["conversation_id"]),
            widget_id=data.get("widget_id"),
            topic_names=[str(t) for t in data.get("topic_names") or []],
            visitor_name=str(data.get("visitor_name") or ""),
            visitor_fields={str(k): str(v) for k, v in (data.get("visitor_fields") or {}).items()},
            visitor_id=str(data.get("visitor_id") or ""),
            page=str(data.get("page") or ""),
            ip=str(data.get("ip") or ""),
            started_at=started,
            accepted_at=_parse_time(data.get("accepted_at")),
            ended_at=ended,
            owner_user_id=data.get("owner_user_id"),
            participants=list(data.get("participants") or []),
            rating=data.get("rating"),
            transcript=list(data.get("transcript") or []),
            regarding=None if regarding is None else Regarding.from_dict(regarding),
            context=dict(data.get("context") or {}),
            labels=[str(name) for name in data.get("labels") or []],
            identity=data.get("identity"),
            contact=data.get("contact"),
            topic_id=data.get("topic_id"),
            agent_id=data.get("agent_id"),
            consent=data.get("consent"),
            disposition=data.get("disposition"),
            important=bool(data.get("important")),
            consults=[
                {"subject": str(c["subject"]), "transcript": list(c["transcript"])}
                for c in data.get("consults") or []
            ],
            files=[{k: str(v) for k, v in f.items()} for f in data.get("files") or []],
        )


def _json_message(message: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(message)
    if isinstance(out.get("sent_at"), datetime):
        out["sent_at"] = _iso(out["sent_at"])
    return out


# ----- text limits ----------------------------------------------------------------------


def utf16_len(text: str) -> int:
    """Length as Dataverse counts it: UTF-16 code units (an emoji is two)."""
    return len(text.encode("utf-16-le")) // 2


def _cut(text: str, limit: int) -> str:
    """`text` cut to at most `limit` UTF-16 units, never inside a character."""
    if utf16_len(text) <= limit:
        return text
    out: list[str] = []
    used = 0
    for ch in text:
        size = 2 if ord(ch) > 0xFFFF else 1
        if used + size > limit:
            break
        out.append(ch)
        used += size
    return "".join(out)


def _dump(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)


def _shorten_strings(value: Any, limit: int) -> Any:
    if isinstance(value, str):
        return value if len(value) <= limit else value[:limit] + "…"
    if isinstance(value, dict):
        return {str(k)[:limit]: _shorten_strings(v, limit) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_shorten_strings(v, limit) for v in value]
    return value


def _bounded_json(value: Any, limit: int = MAX_JSON_CHARS) -> str:
    """`value` as compact JSON of at most `limit` UTF-16 units (see module docstring)."""
    text = _dump(value)
    for step in _JSON_STRING_STEPS:
        if utf16_len(text) <= limit:
            return text
        text = _dump(_shorten_strings(value, step))
    if utf16_len(text) <= limit:
        return text
    return _dump({"truncated": True})


# ----- transcript -----------------------------------------------------------------------


def _clean(text: str) -> str:
    """Text with control characters (other than newlines and tabs) removed."""
    return "".join(
        ch for ch in text if ch in "\n\t" or not unicodedata.category(ch).startswith("C")
    )


def _sender_name(message: Mapping[str, Any]) -> str:
    """The sender's name (``sender.name``, the protocol's shape), else a name for the kind."""
    sender = message.get("sender")
    if not isinstance(sender, Mapping):
        return "System"
    name = sender.get("name")
    if isinstance(name, str) and name.strip():
        return " ".join(_clean(name).split())
    return {"visitor": "Visitor", "agent": "Agent"}.get(str(sender.get("kind")), "System")


def _message_lines(
    message: Mapping[str, Any], previous_day: date | None
) -> tuple[str, date | None]:
    sent = _parse_time(message.get("sent_at"))
    if sent is None:
        stamp, day = "--:--:--", previous_day
    else:
        day = sent.date()
        # The date only when the chat crossed midnight (UTC); actualstart has the day.
        stamp = sent.strftime("%H:%M:%S" if day == previous_day else "%Y-%m-%d %H:%M:%S")
    raw = message.get("text")
    lines = _clean(raw if isinstance(raw, str) else "").split("\n")
    # Continuation lines are indented, so every new line of the transcript is a message.
    body = "\n    ".join(line.rstrip() for line in lines)
    # A channel message's last delivery state (sent, delivered, read, failed).
    state = message.get("state")
    if isinstance(state, str) and state.isalpha():
        body += f" [{state}]"
    return f"[{stamp}] {_sender_name(message)}: {body}", day


def format_transcript(
    messages: Sequence[Mapping[str, Any]],
    *,
    started_at: datetime | None = None,
    limit: int = MAX_TRANSCRIPT_CHARS,
) -> str:
    """The readable transcript: one ``[10:02:11] Ann: hello`` line per message.

    Cut at a message boundary to fit `limit` UTF-16 units, with a closing line saying
    how many messages were left out.
    """
    day = None if started_at is None else _utc(started_at).date()
    budget = limit - _TRUNCATION_RESERVE
    lines: list[str] = []
    used = 0
    for message in messages:
        line, day = _message_lines(message, day)
        size = utf16_len(line) + (1 if lines else 0)
        if used + size > budget:
            if not lines:  # a first message longer than the column: keep its start
                lines.append(_cut(line, budget))
            omitted = len(messages) - len(lines)
            lines.append(
                f"[transcript truncated: {omitted} of {len(messages)} messages not shown; "
                f"the column holds at most {limit} characters]"
            )
            return "\n".join(lines)
        lines.append(line)
        used += size
    return "\n".join(lines)


# ----- readable visitor and participants ------------------------------------------------


def _one_line(value: object) -> str:
    return " ".join(_clean(str(value)).split())


def format_visitor(chat: FinishedChat) -> str:
    """The visitor as a person reads it on the chat form: one ``Label: value`` per line.

    The same facts as `crmchat_visitorinfo` (JSON, for machines), without the JSON.
    """
    lines = [_one_line(chat.visitor_name) or "Visitor"]
    lines += [
        f"{_one_line(name)}: {_one_line(value)}"
        for name, value in chat.visitor_fields.items()
        if _one_line(value)
    ]
    if chat.page:
        lines.append(f"Page: {_one_line(chat.page)}")
    if chat.ip:
        lines.append(f"IP address: {_one_line(chat.ip)}")
    if chat.identity is not None:
        lines.append("Identity: verified by the website")
    if chat.contact and chat.contact.get("name"):
        lines.append(f"Recognised as: {_one_line(chat.contact['name'])}")
    if chat.consent:
        at = _one_line(chat.consent.get("at") or "")
        lines.append(f"Consent: {_one_line(chat.consent.get('text') or '')} ({at})")
    return _cut("\n".join(lines), MAX_READABLE_CHARS)


def format_participants(participants: Sequence[Mapping[str, Any]]) -> str:
    """Who took part, one ``Name (visitor|agent)`` per line, in the order they joined."""
    lines = [
        f"{_one_line(p.get('name') or '') or 'Someone'} ({_one_line(p.get('kind') or 'guest')})"
        for p in participants
    ]
    return _cut("\n".join(dict.fromkeys(lines)), MAX_READABLE_CHARS)


# ----- the activity ---------------------------------------------------------------------


def _subject(chat: FinishedChat) -> str:
    topics = ", ".join(" ".join(t.split()) for t in chat.topic_names if t.strip())
    return _cut(topics or f"Chat with {chat.visitor_name or 'a visitor'}", MAX_SUBJECT_CHARS)


def _datetime_value(moment: datetime) -> str:
    # Dataverse keeps whole seconds.
    return quote(_utc(moment).replace(microsecond=0))


def chat_activity_payload(
    chat: FinishedChat, *, agent_user_ids: Sequence[str] = ()
) -> dict[str, Any]:
    """The create body of the chat's activity (pure; no state columns, see module doc).

    `agent_user_ids`: the system users of the agents who took part, besides the owner;
    each becomes a To party.
    """
    seconds = max(0.0, (chat.ended_at - chat.started_at).total_seconds())
    payload: dict[str, Any] = {
        "subject": _subject(chat),
        "actualstart": _datetime_value(chat.started_at),
        "actualend": _datetime_value(chat.ended_at),
        "actualdurationminutes": math.ceil(seconds / 60),
        "crmchat_visitorinfo": _bounded_json(
            {
                "name": chat.visitor_name,
                "fields": chat.visitor_fields,
                "page": chat.page,
                "ip": chat.ip,
                "accepted_at": _iso(chat.accepted_at),
                "identity": chat.identity,
                "contact": chat.contact,
                "consent": chat.consent,
            }
        ),
        "crmchat_participants": _bounded_json(chat.participants),
        "crmchat_participantnames": format_participants(chat.participants),
        "crmchat_visitordetails": format_visitor(chat),
        "crmchat_transcript": format_transcript(chat.transcript, started_at=chat.started_at),
        "crmchat_context": _bounded_json(chat.context),
        "crmchat_visitorid": _cut(chat.visitor_id, MAX_VISITOR_ID_CHARS),
        "crmchat_durationseconds": int(seconds),
        # The Web API cannot group by a datetime; reports group chats per day by this.
        "crmchat_chatday": _utc(chat.started_at).date().isoformat(),
        # Every activity's standard priority (activitypointer `prioritycode`): High for a
        # chat an agent marked important, so views and queues can sort on it.
        "prioritycode": PRIORITY_HIGH if chat.important else PRIORITY_NORMAL,
    }
    if chat.accepted_at is not None:
        wait = (chat.accepted_at - chat.started_at).total_seconds()
        payload["crmchat_waitseconds"] = max(0, int(wait))
    if chat.topic_id:
        payload[tables.BIND_CHAT_TOPIC] = tables.bind(tables.TOPICS, chat.topic_id)
    if chat.agent_id:
        payload[tables.BIND_CHAT_AGENT] = tables.bind(tables.AGENTS, chat.agent_id)
    if chat.labels:
        # Names, comma-separated: readable in a view, searchable with "contains".
        payload["crmchat_labels"] = _cut(", ".join(chat.labels), MAX_LABELS_CHARS)
    if chat.rating is not None:
        payload["crmchat_rating"] = int(chat.rating)
    if chat.disposition:
        payload["crmchat_disposition"] = _cut(chat.disposition, MAX_DISPOSITION_CHARS)
    if chat.widget_id:
        payload[tables.BIND_CHAT_WIDGET] = tables.bind(tables.WIDGETS, chat.widget_id)
    if chat.owner_user_id:
        payload[tables.BIND_OWNER] = tables.bind(tables.SYSTEMUSERS, chat.owner_user_id)
    if chat.regarding is not None:
        name, value = tables.bind_regarding(chat.regarding.table, chat.regarding.id)
        payload[name] = value
    parties = _parties(chat, agent_user_ids)
    if parties:
        payload[tables.CHAT_PARTIES] = parties
    return payload


def _parties(chat: FinishedChat, agent_user_ids: Sequence[str]) -> list[dict[str, Any]]:
    """The activity parties: the customer as From, each agent's system user as To.

    Parties are what puts a chat on the customer's timeline even when it is regarding
    something else (a case), as an email's sender does.
    """
    parties: list[dict[str, Any]] = []
    customer: tuple[str, str] | None = None
    if chat.contact and chat.contact.get("id"):
        customer = ("contact", chat.contact["id"])
    elif chat.regarding is not None and chat.regarding.table in ("contact", "lead"):
        customer = (chat.regarding.table, chat.regarding.id)
    if customer is not None:
        table, record_id = customer
        parties.append(
            {
                f"partyid_{table}@odata.bind": tables.bind(tables.REGARDING_SETS[table], record_id),
                "participationtypemask": tables.PARTY_FROM,
            }
        )
    users = [chat.owner_user_id] if chat.owner_user_id else []
    users += agent_user_ids
    for user_id in dict.fromkeys(guid(u) for u in users):
        parties.append(
            {
                "partyid_systemuser@odata.bind": tables.bind(tables.SYSTEMUSERS, user_id),
                "participationtypemask": tables.PARTY_TO,
            }
        )
    return parties


def chat_activity_id(conversation_id: str, secret: bytes, *, attempt: int = 0) -> str:
    """The activity id of a chat: derived with an HMAC of the service's secret.

    The conversation id is in every frame an agent sees; an id derived from it with a key
    only the service holds cannot be guessed, so nobody can pre-create "the service's"
    record for a live chat. It is still fixed per chat, so retries stay idempotent.
    `attempt` > 0 gives the next id when the first is held by a record the service did
    not write.
    """
    message = f"crmchat-chat-activity:{guid(conversation_id)}:{attempt}".encode()
    digest = bytearray(hmac.new(secret, message, hashlib.sha256).digest()[:16])
    digest[6] = (digest[6] & 0x0F) | 0x40  # a version-4 shape, as Dataverse ids are
    digest[8] = (digest[8] & 0x3F) | 0x80
    return str(uuid.UUID(bytes=bytes(digest)))


class ForgedChatActivity(Exception):
    """A record holding a chat's activity id was not created by the service."""


def write_chat_activity(
    client: DataverseClient,
    chat: FinishedChat,
    *,
    secret: bytes,
    service_user_id: str,
    agent_user_ids: Sequence[str] = (),
) -> str:
    """Write `chat` as one completed activity: two requests, idempotent (module doc).

    A record already holding the chat's id counts as an earlier attempt only when
    `service_user_id` created it; otherwise it is reported (logged) and left alone, and
    the real transcript is written under the next derived id. Returns the activity id.
    Raises `DataverseError` when Dataverse fails or refuses; the outbox decides whether
    to try again.
    """
    payload = chat_activity_payload(chat, agent_user_ids=agent_user_ids)
    for attempt in range(MAX_ID_ATTEMPTS):
        activity_id = chat_activity_id(chat.conversation_id, secret, attempt=attempt)
        try:
            client.create(tables.CHATS, payload, record_id=activity_id)
        except PreconditionFailed:
            row = client.retrieve(tables.CHATS, activity_id, select=["statecode", _CREATED_BY])
            if str(row.get(_CREATED_BY) or "").lower() != service_user_id.lower():
                log.warning(
                    "chat %s: activity %s was created by %s, not the service; writing the "
                    "transcript under another id",
                    chat.conversation_id,
                    activity_id,
                    row.get(_CREATED_BY),
                )
                continue
            # An earlier attempt created it; close it unless that attempt got that far too.
            if row.get("statecode") == STATE_COMPLETED:
                return activity_id
        # The notes before the close: a completed activity is read-only in the app, and a
        # retry after a crash finds the activity open until every note is written.
        write_notes(client, activity_id, chat_notes(chat), secret=secret)
        client.update(tables.CHATS, activity_id, _CLOSE)
        return activity_id
    raise ForgedChatActivity(f"every activity id of chat {chat.conversation_id} is taken")


def chat_notes(chat: FinishedChat) -> list[dict[str, Any]]:
    """The notes the chat's activity gets (pure): each consult thread (internal), then
    each file sent in the chat, with the file as its `documentbody`."""
    notes: list[dict[str, Any]] = [
        {
            "subject": _cut(str(consult["subject"]), MAX_NOTE_SUBJECT_CHARS),
            "notetext": format_transcript(consult["transcript"], limit=MAX_NOTE_TEXT_CHARS),
        }
        for consult in chat.consults
    ]
    for file in chat.files:
        notes.append(
            {
                "subject": _cut(
                    f"Chat attachment from {file['sender']}: {file['name']}", MAX_NOTE_SUBJECT_CHARS
                ),
                "filename": _cut(file["name"], MAX_NOTE_FILENAME_CHARS),
                "mimetype": file["type"],
                "documentbody": file["documentbody"],
            }
        )
    return notes


def write_notes(
    client: DataverseClient,
    activity_id: str,
    notes: Sequence[Mapping[str, Any]],
    *,
    secret: bytes,
) -> None:
    """Each note on the activity: one create-only upsert each, at an id derived from the
    activity's, so a retry writes none twice."""
    for index, note in enumerate(notes):
        message = f"crmchat-chat-note:{guid(activity_id)}:{index}".encode()
        digest = bytearray(hmac.new(secret, message, hashlib.sha256).digest()[:16])
        digest[6] = (digest[6] & 0x0F) | 0x40
        digest[8] = (digest[8] & 0x3F) | 0x80
        note_id = str(uuid.UUID(bytes=bytes(digest)))
        body = dict(note, **{tables.BIND_NOTE_CHAT: tables.bind(tables.CHATS, activity_id)})
        try:
            client.create(tables.NOTES, body, record_id=note_id)
        except PreconditionFailed:
            pass  # written by an earlier attempt


def chat_activity_handler(
    client: DataverseClient,
    *,
    secret: bytes,
    service_user_id: str | None = None,
    user_of_agent: Callable[[str], str | None] | None = None,
) -> Callable[[dict[str, Any]], None]:
    """The outbox handler for `CHAT_ACTIVITY_KIND` items (payload: `FinishedChat.to_dict`).

    Without `service_user_id` it learns the service's own user from `WhoAmI` on its
    first write. `user_of_agent(agent_id)` names an agent's system user (the cached
    directory, so no request): the agents who took part become To parties.
    """
    me: list[str] = [service_user_id] if service_user_id else []

    def handle(payload: dict[str, Any]) -> None:
        if not me:
            me.append(client.who_am_i().user_id)
        chat = FinishedChat.from_dict(payload)
        users: list[str] = []
        if user_of_agent is not None:
            for participant in chat.participants:
                if participant.get("kind") == "agent" and participant.get("id"):
                    user_id = user_of_agent(str(participant["id"]))
                    if user_id:
                        users.append(user_id)
        write_chat_activity(
            client, chat, secret=secret, service_user_id=me[0], agent_user_ids=users
        )

    return handle
