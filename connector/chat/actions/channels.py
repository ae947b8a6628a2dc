"""Messaging channels in the live chat: a platform's person is a visitor like any other.

`ChannelBridge` is the `ChannelSink` the channel intake hands events to (its worker
thread, never a request thread). An inbound message opens, or continues, the person's
conversation on that account: routed by the account's topic and offered to its agents
like a web chat, so accept, invite, transfer, snippets and end are the web chat's own.

Agent replies go out from the event bus: every process's bridge hears every agent message
published to a chat's visitor side (`chat_channel`), wherever the agent's socket is, and
the one process that wins the message's one-shot claim (`claim_once` on the shared live
state, key `channel-reply:<chat>:<seq>`) sends it through the platform's send client, off
the bus and socket threads. So each message is handed to the platform once across
processes (alone, the same claim in SQLite). The platform's rule is checked twice: before
the message is stored (`check_channel_reply`, called from `do_agent_send`, so a reply the
platform would refuse never enters the chat) and again by `do_channel_reply` just before
sending, on the conversation as the shared state has it. A send that fails anyway
(blocked, rate limited beyond what the client retries) becomes a system line right after
the message, naming the platform's error.
"""

from __future__ import annotations

import logging
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import redis

from connector.channels.accounts import ChannelAccounts
from connector.channels.errors import ChannelError, SendRefused
from connector.channels.files import FileLinks, OutboundFile, send_kind
from connector.channels.links import find_link
from connector.channels.media import InboundFile, inbound_files
from connector.channels.model import (
    ChannelAccount,
    ChannelType,
    EventKind,
    InboundEvent,
    WhatsAppTemplate,
)
from connector.channels.replies import ChannelClients, do_channel_reply
from connector.channels.rules import ReplyWindow, check_reply, reply_schedule, reply_window
from connector.chat import events
from connector.chat.actions.conversations import (
    agent_conversation,
    append_message,
    append_system_line,
    chat_of,
    find_conversation,
    masked_for_chat,
    publish_chat_updated,
    publish_message,
    store_sent,
)
from connector.chat.actions.postpone import bring_back
from connector.chat.actions.queues import publish_waiting, route_waiting
from connector.chat.errors import ChatConflict, ChatError, ChatForbidden, ChatInvalid
from connector.chat.hub import Subscriber
from connector.chat.model import (
    Conversation,
    ConversationKind,
    ConversationState,
    Message,
    Participant,
    SenderKind,
)
from connector.chat.routing import agent_channel, chat_channel
from connector.chat.state import DuplicateMessage, LivePrimitives
from connector.chat.views import iso
from connector.crm.attachments import MAX_ATTACHMENTS_PER_CHAT

if TYPE_CHECKING:
    from connector.chat.engine import ChatEngine

__all__ = [
    "CHANNEL_LABELS",
    "ChannelBridge",
    "ChatOutsideWindow",
    "channel_visitor_id",
    "check_channel_reply",
    "do_channel_message",
    "do_channel_receipt",
    "do_channel_sent",
    "do_channel_subscription",
    "do_agent_template",
    "do_start_channel_chat",
]

log = logging.getLogger(__name__)

CHANNEL_LABELS = {
    ChannelType.MESSENGER: "Messenger",
    ChannelType.INSTAGRAM: "Instagram",
    ChannelType.WHATSAPP: "WhatsApp",
    ChannelType.VIBER: "Viber",
}
# Sends wait on the platform (up to the client's timeout); a few at once is plenty for
# agents typing, and keeps one slow platform from holding every reply.
SEND_THREADS = 4
# How long a reply's claim is remembered: far longer than any process can lag behind the
# bus with its queue of sends, short enough that the claims of a busy day fit in memory.
REPLY_CLAIM_SECS = 24 * 60 * 60


class ChatOutsideWindow(ChatError):
    """The platform's rule refuses a reply now (the message says which rule)."""

    code = "outside_window"


def channel_visitor_id(account_key: str, person_id: str) -> str:
    """The person as a visitor: one per account (Messenger ids are page-scoped)."""
    return f"channel:{account_key}:{person_id}"


def _window(engine: ChatEngine, conversation: Conversation) -> ReplyWindow:
    channel = conversation.channel or {}
    return reply_window(
        ChannelType(channel["type"]),
        last_inbound_at=conversation.last_visitor_message_at,
        now=engine.clock(),
        subscribed=bool(channel.get("subscribed", True)),
    )


def _with_rules(conversation: Conversation) -> None:
    """Put the reply windows the person's last message opened on the chat (the console
    shows the one in force and the next: "replies until 14:05, then as a human agent
    until 9 Dec")."""
    channel = conversation.channel or {}
    schedule = reply_schedule(
        ChannelType(channel["type"]),
        last_inbound_at=conversation.last_visitor_message_at,
        subscribed=bool(channel.get("subscribed", True)),
    )
    conversation.channel = {
        **channel,
        "rules": [{"mode": w.mode.value, "until": iso(w.until)} for w in schedule],
    }


def check_channel_reply(engine: ChatEngine, conversation: Conversation) -> None:
    """Refuse an agent's free-form reply the platform's rule does not allow now.

    Web chats pass. Raises ChatOutsideWindow (engine lock held by the caller)."""
    if conversation.channel is None:
        return
    try:
        check_reply(
            ChannelType(conversation.channel["type"]),
            _window(engine, conversation),
            template=False,
            by_human=True,
        )
    except SendRefused as error:
        raise ChatOutsideWindow(str(error)) from error


def do_agent_template(
    engine: ChatEngine,
    agent_id: str,
    conversation_id: str,
    *,
    client_id: str,
    text: str,
    claims: LivePrimitives,
) -> int | None:
    """Store an agent's WhatsApp template message (`text`, its filled-in preview) in the
    chat and relay it; returns its seq for the caller to send it, or None for a resend
    of `client_id` (already stored and sent: nothing goes out twice).

    A template may go to anyone who wrote to us before, in or outside the 24-hour
    window. The message's reply claim is taken here, before it is published, so the
    bridge's bus listener (on any process) does not send it again as text.

    Raises ChatNotFound, ChatEnded, ChatInvalid (not an active WhatsApp chat) and
    ChatOutsideWindow (the person never wrote)."""
    with engine.changing():
        conversation = agent_conversation(engine, agent_id, conversation_id)
        channel = conversation.channel or {}
        if channel.get("type") != ChannelType.WHATSAPP.value:
            raise ChatInvalid("Templates are WhatsApp's.")
        if conversation.is_open and conversation.state is not ConversationState.ACTIVE:
            raise ChatInvalid("Accept the chat first.")
        try:
            check_reply(ChannelType.WHATSAPP, _window(engine, conversation), template=True)
        except SendRefused as error:
            raise ChatOutsideWindow(str(error)) from error
        profile = engine.directory.agent(agent_id)
        if profile is None:
            raise ChatForbidden("You no longer have an agent profile.")
        message = store_sent(
            engine,
            Subscriber(lambda _text: None, name="template"),
            conversation,
            kind=SenderKind.AGENT,
            sender_id=profile.agent_id,
            sender_name=profile.name,
            # The preview is stored in CRM: masked as the agent's other messages are.
            text=masked_for_chat(engine, conversation, text),
            client_id=client_id,
        )
        if message is None:
            return None
        claims.claim_once(_reply_claim(conversation_id, message.seq), REPLY_CLAIM_SECS)
        publish_message(engine, conversation, message)
        return message.seq


# A person with a platform link wrote to us once; with their earlier chats gone (retention)
# when is unknown, so it counts as long ago: no window is open, a WhatsApp template is.
_LONG_AGO = datetime(1970, 1, 1, tzinfo=UTC)


def _last_heard(engine: ChatEngine, visitor_id: str) -> tuple[datetime, bool]:
    """When the person last wrote on that account, and whether they are subscribed
    (Viber), from their earlier chats (the messages' arrival times)."""
    last: datetime | None = None
    subscribed = True
    for entry in engine.state.history(visitor_id):  # newest first
        earlier = engine.state.conversation(entry.conversation_id)
        if earlier is None:
            continue
        if last is None and earlier.channel is not None:
            subscribed = bool(earlier.channel.get("subscribed", True))
        heard = earlier.last_visitor_message_at
        if heard is not None and (last is None or heard > last):
            last = heard
    return (last or _LONG_AGO), subscribed


def do_start_channel_chat(
    engine: ChatEngine,
    agent_id: str,
    account: ChannelAccount,
    person: dict[str, str],
    *,
    contact: dict[str, str],
    regarding: dict[str, str],
) -> tuple[str, bool]:
    """ "Send a new message": the agent opens a conversation with a person who wrote to
    us before on `account` (`person`: {"id", "name"} from their platform link), active
    and the agent's from the start, regarding the contact or its case. Returns the
    chat's id and whether it is new; the person's open chat on that account, when the
    agent is in it, is returned instead of a second one.

    The first message is the agent's, under the same rules as a reply: the window the
    person's last message opened (from their earlier chats), templates outside it on
    WhatsApp, subscribed people on Viber.

    Raises ChatConflict (another agent has the person's open chat) and
    ChatOutsideWindow (nothing at all may be sent to them now)."""
    label = CHANNEL_LABELS[account.channel]
    visitor_id = channel_visitor_id(account.key, person["id"])
    with engine.changing():
        profile = engine.directory.agent(agent_id)
        if profile is None:
            raise ChatForbidden("You no longer have an agent profile.")
        for open_chat in engine.conversations.values():
            if open_chat.visitor_id == visitor_id and open_chat.is_open:
                if open_chat.has_agent(agent_id):
                    return open_chat.conversation_id, False
                raise ChatConflict(f"This person is in a chat on {label} with another agent.")
        last, subscribed = _last_heard(engine, visitor_id)
        now = engine.clock()
        window = reply_window(account.channel, last_inbound_at=last, now=now, subscribed=subscribed)
        try:
            # Something can go: a reply (tagged or not), or on WhatsApp a template.
            check_reply(account.channel, window, template=account.channel is ChannelType.WHATSAPP)
        except SendRefused as error:
            raise ChatOutsideWindow(str(error)) from error
        conversation = Conversation(
            conversation_id=str(uuid.uuid4()),
            kind=ConversationKind.VISITOR,
            state=ConversationState.ACTIVE,
            started_at=now,
            accepted_at=now,
            owner_agent_id=profile.agent_id,
            participants=[Participant("agent", profile.agent_id, profile.name)],
            visitor_id=visitor_id,
            visitor_name=person.get("name") or contact["name"] or f"{label} user",
            visitor_fields={
                "channel": label,
                "channel_account": account.name,
                "platform_user_id": person["id"],
            },
            topic_id=account.topic_id,
            regarding=dict(regarding),
            contact=dict(contact),
            last_visitor_message_at=last,
            channel={
                "type": account.channel.value,
                "label": label,
                "account": account.key,
                "account_name": account.name,
                "person": person["id"],
                "subscribed": subscribed,
                "outbound": True,
            },
        )
        _with_rules(conversation)
        engine.state.save_conversation(conversation)
        engine.conversations[conversation.conversation_id] = conversation
        engine.workload.note(conversation)
        line = append_system_line(
            engine, conversation, f"{profile.name} started this conversation on {label}."
        )
        engine.bus.publish(
            events.event(events.CHAT_ACCEPTED, chat=chat_of(engine, conversation)),
            {agent_channel(profile.agent_id)},
        )
        publish_message(engine, conversation, line)
        return conversation.conversation_id, True


def _reply_claim(conversation_id: str, seq: int) -> str:
    """The one-shot claim of sending the agent's message `seq` (module docstring)."""
    return f"channel-reply:{conversation_id}:{seq}"


def _open_channel_chat(
    engine: ChatEngine, account: ChannelAccount, event: InboundEvent
) -> Conversation | None:
    visitor_id = channel_visitor_id(account.key, event.person_id)
    for conversation in engine.conversations.values():
        if conversation.visitor_id == visitor_id and conversation.is_open:
            return conversation
    return None


def _message_text(
    event: InboundEvent, kept: frozenset[int] = frozenset(), refused: dict[int, str] | None = None
) -> str:
    """The text, then one line per attachment not kept as a file of the chat (its kind,
    and name or address, and why it was not kept)."""
    lines = [event.text] if event.text else []
    for index, item in enumerate(event.attachments):
        if index in kept:
            continue
        where = item.name or item.url or item.media_id or item.sticker_id or ""
        line = f"[{item.kind.value}] {where}".strip()
        reason = (refused or {}).get(index)
        lines.append(f"{line} (not kept: {reason})" if reason else line)
    return "\n".join(lines)


def _file_client_id(event: InboundEvent, file: InboundFile) -> str:
    """The file's message id: the platform's message id and the file's place in it, so a
    redelivery stores it once, as the text."""
    return f"{event.message_id or event.at.isoformat()}#file{file.index}"


def _store_file(
    engine: ChatEngine, conversation: Conversation, event: InboundEvent, file: InboundFile
) -> Message:
    """Keep one of the person's files and add it as their message (lock held), as a web
    chat's upload is (`connector.chat.actions.attachments`); a chat that holds its most
    files gets a line saying this one was not kept."""
    held = sum(1 for m in engine.state.messages(conversation.conversation_id) if m.attachment)
    if held >= MAX_ATTACHMENTS_PER_CHAT:
        return append_system_line(
            engine,
            conversation,
            f"{file.name} was not kept: a chat holds at most {MAX_ATTACHMENTS_PER_CHAT} files.",
        )
    attachment_id = str(uuid.uuid4())
    engine.state.save_attachment(conversation.conversation_id, attachment_id, file.data)
    attachment = {"id": attachment_id, "name": file.name, "type": file.type, "size": len(file.data)}
    return append_message(
        engine,
        conversation,
        kind=SenderKind.VISITOR,
        sender_id=conversation.visitor_id or "",
        sender_name=conversation.visitor_name,
        text=file.name,
        client_id=_file_client_id(event, file),
        attachment=attachment,
        sent_at=event.at,
    )


def _person_fields(channel: ChannelType, event: InboundEvent) -> dict[str, str]:
    """The profile name as first and last name ("Pat Q Person": "Pat Q", "Person"; one
    word: the last name, which Dataverse shows), and on WhatsApp the number (the WhatsApp
    id is the person's phone number, digits with the country code)."""
    fields: dict[str, str] = {}
    name = " ".join((event.person_name or "").split())
    if name:
        first, _, last = name.rpartition(" ")
        fields["lastname"] = last
        if first:
            fields["firstname"] = first
    if channel is ChannelType.WHATSAPP and event.person_id.isdigit():
        fields["phone"] = f"+{event.person_id}"
    return fields


def do_channel_message(
    engine: ChatEngine,
    account: ChannelAccount,
    event: InboundEvent,
    subscriber: Subscriber,
    *,
    linked: dict[str, str] | None = None,
    files: list[InboundFile] | None = None,
    refused: dict[int, str] | None = None,
) -> Conversation:
    """Append the person's message to their open conversation on `account`, or open one
    offered to the account's topic. A redelivery (same message id) is stored once.

    `subscriber` is the bridge's: a redelivery's answer goes to it (and nowhere).
    `linked` is the contact or lead the person's platform link names: a chat opened now
    regards it from the start (`connector.channels.links`). `files` are the message's
    attachments already fetched (`inbound_files`): each is a message of its own with
    the file, as a web chat's upload is, after the text; `refused` says why the others
    were not kept."""
    with engine.changing():
        conversation = _open_channel_chat(engine, account, event)
        now = engine.clock()
        opened = conversation is None
        if conversation is None:
            label = CHANNEL_LABELS[account.channel]
            name = event.person_name or f"{label} user"
            conversation = Conversation(
                conversation_id=str(uuid.uuid4()),
                kind=ConversationKind.VISITOR,
                state=ConversationState.WAITING,
                started_at=now,
                visitor_id=channel_visitor_id(account.key, event.person_id),
                visitor_name=name,
                # On the activity's visitor details, as a web chat's form fields are; the
                # person's name (and WhatsApp number) become a new contact's or lead's.
                visitor_fields={
                    "channel": label,
                    "channel_account": account.name,
                    "platform_user_id": event.person_id,
                    **_person_fields(account.channel, event),
                },
                topic_id=account.topic_id,
                waiting_since=now,
                start_client_id=event.message_id,
                channel={
                    "type": account.channel.value,
                    "label": label,
                    "account": account.key,
                    "account_name": account.name,
                    "person": event.person_id,
                    "subscribed": True,
                },
            )
            if linked is not None:
                conversation.regarding = dict(linked)
                if linked["table"] == "contact":
                    conversation.contact = {"id": linked["id"], "name": linked["name"]}
            engine.state.save_conversation(conversation)
            engine.conversations[conversation.conversation_id] = conversation
            engine.workload.note(conversation)
        previous = (conversation.last_visitor_message_at, conversation.waiting_since)
        conversation.last_visitor_message_at = event.at
        if conversation.waiting_since is None:
            conversation.waiting_since = now
        files = files or []
        text = _message_text(event, frozenset(f.index for f in files), refused)
        stored: list[Message] = []
        if text or not files:
            message = store_sent(
                engine,
                subscriber,
                conversation,
                kind=SenderKind.VISITOR,
                sender_id=conversation.visitor_id or "",
                sender_name=conversation.visitor_name,
                # A channel has no widget: the organisation's masking rules apply. The
                # person keeps what they typed in their own app.
                text=masked_for_chat(engine, conversation, text or "[empty message]"),
                client_id=event.message_id or f"{event.kind}-{event.at.isoformat()}",
                # The platform's time: the reply window runs from when the person wrote,
                # also after a reload derives it from the messages (state.py).
                sent_at=event.at,
            )
            if message is None:  # a redelivery: its files were stored with it
                conversation.last_visitor_message_at, conversation.waiting_since = previous
                return conversation
            stored.append(message)
        for file in files:
            known = engine.state.message_by_client_id(
                conversation.conversation_id, _file_client_id(event, file)
            )
            if known is None:
                try:
                    stored.append(_store_file(engine, conversation, event, file))
                except DuplicateMessage:  # the same delivery, on another process
                    pass
        if not stored:
            conversation.last_visitor_message_at, conversation.waiting_since = previous
            return conversation
        _with_rules(conversation)
        engine.state.save_conversation(conversation)
        if opened:
            # Nobody available: the chat waits in the queue and rings as agents come,
            # unlike a web chat, since the person has already written (actions/queues.py).
            publish_waiting(engine, conversation)
            route_waiting(engine)
        else:
            for message in stored:
                publish_message(engine, conversation, message)
            if conversation.postponed_until is not None:
                bring_back(engine, conversation)  # the person wrote: their chat is back
            else:
                publish_chat_updated(engine, conversation, skip=set())
        return conversation


def do_channel_subscription(
    engine: ChatEngine, account: ChannelAccount, event: InboundEvent
) -> None:
    """Viber: remember on the open conversation whether the person is subscribed."""
    with engine.changing():
        conversation = _open_channel_chat(engine, account, event)
        if conversation is None or conversation.channel is None:
            return
        conversation.channel = {
            **conversation.channel,
            "subscribed": event.kind is EventKind.SUBSCRIBED,
        }
        _with_rules(conversation)
        engine.state.save_conversation(conversation)
        publish_chat_updated(engine, conversation, skip=set())


# A message's state as the platform reports it, in the order it moves; a late or
# redelivered receipt never moves it back (a "delivered" after "read" changes nothing).
RECEIPT_ORDER = {"sent": 0, "delivered": 1, "read": 2}
_RECEIPT_STATE = {EventKind.DELIVERED: "delivered", EventKind.READ: "read"}


def _advance(state: str, kind: EventKind) -> str:
    """A message's state after a receipt of `kind` (never backwards; failed is final)."""
    if state not in RECEIPT_ORDER:
        return state
    if kind is EventKind.FAILED:
        return "failed" if state != "read" else state
    wanted = _RECEIPT_STATE[kind]
    return wanted if RECEIPT_ORDER[wanted] > RECEIPT_ORDER[state] else state


def _not_delivered(engine: ChatEngine, conversation: Conversation, reason: str | None) -> None:
    line = append_system_line(
        engine, conversation, f"Not delivered: {reason or 'the platform gave no reason.'}"
    )
    publish_message(engine, conversation, line)


def do_channel_sent(
    engine: ChatEngine, conversation_id: str, seq: int, platform_message_id: str
) -> None:
    """The platform took the agent's message `seq`: remember its id for the receipts and
    show it as sent (`channel.receipts[seq]`, drawn next to the message). A receipt that
    came before the send's answer (the platforms send them on their own) applies now."""
    with engine.changing():
        conversation = find_conversation(engine, conversation_id)
        if conversation is None or conversation.channel is None:
            return
        channel = conversation.channel
        sent = dict(channel.get("sent") or {})
        receipts = dict(channel.get("receipts") or {})
        early = dict(channel.get("early") or {})
        if platform_message_id:
            sent[platform_message_id] = seq
        state = receipts.get(str(seq), "sent")
        came_first = early.pop(platform_message_id, None) if platform_message_id else None
        if came_first is not None:
            for kind in came_first["kinds"]:
                state = _advance(state, EventKind(kind))
        receipts[str(seq)] = state
        conversation.channel = {**channel, "sent": sent, "receipts": receipts, "early": early}
        engine.state.save_conversation(conversation)
        if came_first is not None and state == "failed":
            _not_delivered(engine, conversation, came_first.get("error"))
        publish_chat_updated(engine, conversation, skip=set())


def _receipt_seqs(engine: ChatEngine, conversation: Conversation, event: InboundEvent) -> list[int]:
    """The agent messages a receipt is about: the one it names, and for a watermark
    (Messenger) every message the platform took up to that time."""
    channel = conversation.channel or {}
    sent: dict[str, int] = channel.get("sent") or {}
    seqs = {sent[event.message_id]} if event.message_id in sent else set()
    if event.watermark is not None:
        taken = set(sent.values())
        seqs |= {
            m.seq
            for m in engine.state.messages(conversation.conversation_id)
            if m.seq in taken and m.sent_at <= event.watermark
        }
    return sorted(seqs)


# Receipts kept for messages whose send answer has not come back yet, per chat.
EARLY_RECEIPTS_MAX = 50


def do_channel_receipt(engine: ChatEngine, account: ChannelAccount, event: InboundEvent) -> None:
    """A delivery, read or failure report on the agent's messages: the new state goes on
    the open chat (the console shows it; the transcript keeps it). A failure also adds
    the system line a refused send gets."""
    with engine.changing():
        conversation = _open_channel_chat(engine, account, event)
        if conversation is None or conversation.channel is None:
            return
        channel = conversation.channel
        receipts = dict(channel.get("receipts") or {})
        seqs = _receipt_seqs(engine, conversation, event)
        if event.message_id and event.message_id not in (channel.get("sent") or {}):
            # About a message whose send answer is still on its way: kept for it (a
            # Messenger watermark may still cover the messages already known, below).
            early = dict(channel.get("early") or {})
            kept = early.get(event.message_id) or {"kinds": [], "error": None}
            kept = {"kinds": [*kept["kinds"], event.kind.value], "error": event.error}
            early[event.message_id] = kept
            channel = {**channel, "early": dict(list(early.items())[-EARLY_RECEIPTS_MAX:])}
            conversation.channel = channel
            engine.state.save_conversation(conversation)
        changed = False
        for seq in seqs:
            now = receipts.get(str(seq), "sent")
            receipts[str(seq)] = _advance(now, event.kind)
            changed |= receipts[str(seq)] != now
        if not changed:
            return
        conversation.channel = {**channel, "receipts": receipts}
        engine.state.save_conversation(conversation)
        if event.kind is EventKind.FAILED:
            _not_delivered(engine, conversation, event.error)
        publish_chat_updated(engine, conversation, skip=set())


class ChannelBridge:
    """The channel intake's sink and the way out for agents' replies (module docstring)."""

    def __init__(
        self,
        engine: ChatEngine,
        accounts: ChannelAccounts,
        clients: ChannelClients,
        *,
        claims: LivePrimitives,
        file_links: FileLinks,
        dataverse: Any = None,
        app_tables: Any = None,
    ) -> None:
        """`claims` is the live state every process shares (the engine's, typed for
        its one-shot claims); `app_tables` (connector.crm.app_tables.AppTables) says
        whether the organization has leads (None: it does); `file_links` signs the links
        the platforms fetch an agent's files from."""
        self.engine = engine
        self.file_links = file_links
        self.app_tables = app_tables
        self.claims = claims
        self.accounts = accounts
        self.clients = clients
        # Reads the people's platform links (None: chats open unlinked).
        self.dataverse = dataverse
        # Answers to the bridge's own messages (a redelivery) are not sent anywhere.
        self.subscriber = Subscriber(lambda _text: None, name="channels")
        self._pool = ThreadPoolExecutor(SEND_THREADS, thread_name_prefix="crmchat-channel-send")
        engine.bus.listen(self._on_event)

    def do_channel_event(self, account: ChannelAccount, event: InboundEvent) -> None:
        if event.kind is EventKind.MESSAGE:
            linked = None
            with self.engine.lock:
                opening = _open_channel_chat(self.engine, account, event) is None
            # Read outside the engine's lock (Dataverse and Graph calls), on the intake
            # thread: the person's link, and on Messenger / Instagram their profile name
            # (WhatsApp's and Viber's webhooks carry it).
            if opening and self.dataverse is not None:
                leads = self.app_tables is None or self.app_tables.has("lead")
                linked = find_link(self.dataverse, account, event.person_id, leads=leads)
            if opening and event.person_name is None:
                name = self.clients.meta.person_name(account, event.person_id)
                if name:
                    event = event.model_copy(update={"person_name": name})
            # The pictures, documents and stickers, fetched off the lock (network calls).
            files, refused = inbound_files(self.clients.meta, account, event)
            do_channel_message(
                self.engine,
                account,
                event,
                self.subscriber,
                linked=linked,
                files=files,
                refused=refused,
            )
        elif event.kind in (EventKind.SUBSCRIBED, EventKind.UNSUBSCRIBED):
            do_channel_subscription(self.engine, account, event)
        elif event.kind in (EventKind.DELIVERED, EventKind.READ, EventKind.FAILED):
            do_channel_receipt(self.engine, account, event)

    def stop(self) -> None:
        self._pool.shutdown(wait=True)

    def _on_event(self, event: dict[str, Any], channels: frozenset[str]) -> None:
        """Every event of every process (the bus's thread; alone, the publisher's)."""
        if event.get("type") != events.MESSAGE_CREATED:
            return
        if (event.get("sender") or {}).get("kind") != SenderKind.AGENT.value:
            return
        conversation_id = str(event["conversation_id"])
        if chat_channel(conversation_id) not in channels:
            return  # not for the person's side (e.g. an agent-to-agent chat)
        attachment = event.get("attachment")
        self._pool.submit(
            self._send,
            conversation_id,
            int(event["seq"]),
            str(event["text"]),
            attachment if isinstance(attachment, dict) else None,
        )

    def _channel_chat(self, conversation_id: str) -> Conversation | None:
        """The channel chat as the shared state has it now; None for a web chat."""
        engine = self.engine
        with engine.lock:
            copy = engine.conversations.get(conversation_id)
        if copy is not None and copy.channel is None:
            return None  # a web chat (whether a chat is one never changes): no read
        # This process's copy may lag another's change: the window is the state's.
        conversation = engine.state.conversation(conversation_id)
        return conversation if conversation is not None and conversation.channel else None

    def _send(
        self, conversation_id: str, seq: int, text: str, attachment: dict[str, Any] | None
    ) -> None:
        try:
            conversation = self._channel_chat(conversation_id)
            if conversation is None or conversation.channel is None:
                return
            if not self.claims.claim_once(_reply_claim(conversation_id, seq), REPLY_CLAIM_SECS):
                return  # another process (or an earlier delivery here) sends it
        except redis.RedisError:
            # Unclaimed, it cannot be sent safely (another process may have it). Redis
            # being away, the engine refuses new messages too, so this is the last one.
            log.warning("channel reply %s/%s not sent: Redis unreachable", conversation_id, seq)
            return
        if attachment is None:
            self._deliver(conversation, seq, text=text)
            return
        self._deliver(conversation, seq, file=self._outbound_file(conversation, attachment))

    def _outbound_file(
        self, conversation: Conversation, attachment: dict[str, Any]
    ) -> OutboundFile:
        """The agent's file as the platform's send call names it: by a signed link to it
        (`connector.channels.files`), as a picture or a file as the platform takes it."""
        name, size = str(attachment["name"]), int(attachment["size"])
        channel = ChannelType((conversation.channel or {})["type"])
        kind = send_kind(channel, name, size) or "file"  # checked when it was stored
        url = self.file_links.link(conversation.conversation_id, str(attachment["id"]), name)
        return OutboundFile(kind=kind, url=url, name=name, size=size)

    def send_template(self, conversation_id: str, seq: int, template: WhatsAppTemplate) -> None:
        """Send the template message `seq` (stored and claimed by `do_agent_template`) on
        the send pool; the outcome shows on the message as a reply's does."""

        def run() -> None:
            conversation = self._channel_chat(conversation_id)
            if conversation is not None:
                self._deliver(conversation, seq, template=template)

        self._pool.submit(run)

    def _deliver(
        self,
        conversation: Conversation,
        seq: int,
        *,
        text: str | None = None,
        template: WhatsAppTemplate | None = None,
        file: OutboundFile | None = None,
    ) -> None:
        """Call the platform for the claimed message `seq`; a refusal becomes the
        "Not delivered" line after it."""
        conversation_id = conversation.conversation_id
        channel = conversation.channel or {}
        window = _window(self.engine, conversation)
        account = self.accounts.get(str(channel["account"]))
        try:
            if account is None or not account.enabled:
                raise _AccountGone(str(channel.get("account_name") or "the account"))
            sent = do_channel_reply(
                self.clients,
                account,
                str(channel["person"]),
                window,
                text=text,
                template=template,
                file=file,
            )
            do_channel_sent(self.engine, conversation_id, seq, sent.message_id)
            log.info(
                "channel reply sent",
                extra={
                    "conversation_id": conversation_id,
                    "channel": channel["type"],
                    "platform_message_id": sent.message_id,
                },
            )
        except (ChannelError, _AccountGone) as error:
            self._report_failure(conversation_id, error)
        except Exception:
            log.exception("channel reply for %s failed", conversation_id)
            self._report_failure(conversation_id, None)

    def _report_failure(self, conversation_id: str, error: Exception | None) -> None:
        """A system line right after the message: not delivered, and why."""
        reason = _failure_text(error)
        with self.engine.changing():
            conversation = find_conversation(self.engine, conversation_id)
            if conversation is None or not conversation.is_open:
                return
            _not_delivered(self.engine, conversation, reason)


class _AccountGone(Exception):
    def __str__(self) -> str:
        return f"{self.args[0]} is disabled or deleted."


def _failure_text(error: Exception | None) -> str:
    """What the agent reads: the platform's message, its stable code, and the wait."""
    if error is None:
        return "the platform could not be reached."
    if not isinstance(error, ChannelError):
        return str(error)
    text = f"{error.message} ({error.api_code}"
    text += f" {error.code})" if error.code else ")"
    retry_after: float | None = getattr(error, "retry_after", None)
    if retry_after:
        text += f"; the platform asks to wait {round(retry_after)} s"
    return text
