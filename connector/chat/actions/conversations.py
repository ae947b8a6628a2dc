"""Chats as every action sees them: lookups, routes, messages, and the events
about a chat that several actions publish; plus the CRM side's reads and its link."""

from __future__ import annotations

import logging
import uuid
from datetime import datetime
from typing import TYPE_CHECKING, Any

import redis

from connector.chat import events
from connector.chat.bus import RedisBus, bus_body
from connector.chat.errors import ChatEnded, ChatNotFound, ChatUnavailable
from connector.chat.finish import transcript_messages
from connector.chat.hub import Queued, Subscriber
from connector.chat.model import (
    AgentPresence,
    Conversation,
    ConversationKind,
    ConversationState,
    Message,
    Participant,
    SenderKind,
    VisitorPresence,
)
from connector.chat.ports import AgentLike, WidgetLike
from connector.chat.redis_state import RedisLiveState
from connector.chat.routing import (
    AgentRoute,
    available_topics,
    can_see,
    chat_channel,
    conversation_channels,
    watcher_channels,
    widget_available,
    widget_channel,
)
from connector.chat.state import AppendResult, DuplicateMessage
from connector.chat.views import (
    chat_view,
    message_view,
    visitor_view,
)
from connector.crm.chat_activity import format_transcript
from connector.crm.hours import design_is_open
from connector.crm.masking import masked_text

if TYPE_CHECKING:
    from connector.chat.engine import ChatEngine

__all__ = [
    "open_agent_chat",
    "access_agent_chat",
    "access_earlier_chat",
    "agent_conversation",
    "agent_presence",
    "agent_routes",
    "append_message",
    "append_system_line",
    "chat_of",
    "do_refresh_availability",
    "do_set_regarding",
    "find_conversation",
    "may_take",
    "note_agent",
    "publish_chat_updated",
    "publish_message",
    "publish_visitor",
    "note_message",
    "relay_sent",
    "relay_shared",
    "shared_chat",
    "shared_relay",
    "refresh_availability",
    "routing_topics",
    "store_sent",
    "masked_for_chat",
    "transcript_text",
    "visitor_agent",
    "widget_on",
    "widget_status",
    "without_requester",
]

log = logging.getLogger(__name__)


def widget_on(engine: ChatEngine, widget: WidgetLike) -> bool:
    """The widget may chat: it is enabled, chat is on for the organisation, it offers at
    least one topic, and it is within its operating hours."""
    return (
        widget.enabled
        and bool(widget.topic_ids)
        and engine.directory.chat_enabled()
        and design_is_open(widget.design, engine.clock())
    )


def do_refresh_availability(engine: ChatEngine) -> None:
    """Tell open pages whether their widget can chat now, after the configuration
    changed (the chat switch, a widget turned off): an open page hides its launcher
    within seconds, as when the last agent goes Away."""
    with engine.changing():
        # An agent's topics may have been edited in CRM since: file everyone again.
        engine.roster.rebuild(engine.agents, engine.directory)
        refresh_availability(engine, None)


def agent_presence(engine: ChatEngine, agent_id: str) -> AgentPresence:
    presence = engine.agents.get(agent_id)
    if presence is None:
        presence = engine.agents[agent_id] = AgentPresence(agent_id)
    return presence


def agent_routes(
    engine: ChatEngine, topic_ids: frozenset[str] | None = None, *, available: bool = False
) -> list[AgentRoute]:
    """The online agents as routing sees them now: all of them, or those sharing one of
    `topic_ids` (only the Available ones with `available`). Read from the roster, so the
    cost follows the agents concerned, not every agent there is."""
    roster = engine.roster
    if topic_ids is None:
        agent_ids = roster.online()
    else:
        found = roster.available_for(topic_ids) if available else roster.online_for(topic_ids)
        agent_ids = sorted(found)
    routes = []
    for agent_id in agent_ids:
        profile = engine.directory.agent(agent_id)
        presence = engine.agents.get(agent_id)
        if profile is not None and presence is not None:
            routes.append(AgentRoute(agent_id, profile.topic_ids, presence.status, presence.online))
    return routes


def note_agent(engine: ChatEngine, agent_id: str) -> None:
    """The agent came, went or changed status (lock held): file them in the roster."""
    engine.roster.note_presence(agent_id, engine.agents.get(agent_id), engine.directory)


def routing_topics(engine: ChatEngine, conversation: Conversation) -> frozenset[str]:
    """The topics that route the chat: the one the visitor chose, else the widget's."""
    if conversation.topic_id is not None:
        return frozenset({conversation.topic_id})
    widget = engine.directory.widget(conversation.widget_id) if conversation.widget_id else None
    return widget.topic_ids if widget is not None else frozenset()


def without_requester(
    engine: ChatEngine, agent_ids: list[str], requester_user_id: str | None
) -> list[str]:
    """The agents but the one who is the CRM user asking for help (an agent who uses
    the internal launcher must not be offered their own request)."""
    if not requester_user_id:
        return agent_ids
    wanted = requester_user_id.lower()
    kept = []
    for agent_id in agent_ids:
        profile = engine.directory.agent(agent_id)
        if profile is None or profile.user_id.lower() != wanted:
            kept.append(agent_id)
    return kept


def may_take(engine: ChatEngine, profile: AgentLike, conversation: Conversation) -> bool:
    """The agent may be offered (and accept) this waiting chat: not one they rejected."""
    return (
        can_see(profile.topic_ids, routing_topics(engine, conversation))
        and not (
            conversation.requester_user_id
            and profile.user_id.lower() == conversation.requester_user_id.lower()
        )
        and profile.agent_id not in conversation.declined_agent_ids
    )


def find_conversation(engine: ChatEngine, conversation_id: str) -> Conversation | None:
    conversation = engine.conversations.get(conversation_id)
    if conversation is None:
        conversation = engine.state.conversation(conversation_id)
    return conversation


def chat_of(engine: ChatEngine, conversation: Conversation) -> dict[str, Any]:
    widget = engine.directory.widget(conversation.widget_id) if conversation.widget_id else None
    visitor = engine.visitors.get(conversation.visitor_id) if conversation.visitor_id else None
    history = (
        engine.state.history(conversation.visitor_id, exclude=conversation.conversation_id)
        if conversation.visitor_id
        else []
    )
    return chat_view(
        conversation,
        widget=widget,
        topics=engine.directory.topics(),
        labels=engine.directory.labels(),
        messages=engine.state.messages(conversation.conversation_id),
        history=history,
        visitor=visitor,
        consult_of=_consult_of(engine, conversation),
    )


def _consult_of(engine: ChatEngine, conversation: Conversation) -> dict[str, str] | None:
    """Which visitor chat a consult is about (actions/consults.py), for its agents."""
    if conversation.consult_of is None:
        return None
    chat = find_conversation(engine, conversation.consult_of)
    return {
        "conversation_id": conversation.consult_of,
        "visitor_name": chat.visitor_name if chat is not None else "",
    }


def open_agent_chat(
    engine: ChatEngine, profile: AgentLike, target: AgentLike, *, consult_of: str | None = None
) -> Conversation:
    """Start and store an active chat between two agents (a consult when `consult_of` names
    the visitor chat it is about); the caller tells them."""
    now = engine.clock()
    conversation = Conversation(
        conversation_id=str(uuid.uuid4()),
        kind=ConversationKind.AGENT,
        state=ConversationState.ACTIVE,
        started_at=now,
        accepted_at=now,
        owner_agent_id=profile.agent_id,
        participants=[
            Participant("agent", profile.agent_id, profile.name),
            Participant("agent", target.agent_id, target.name),
        ],
        consult_of=consult_of,
    )
    engine.state.save_conversation(conversation)
    engine.conversations[conversation.conversation_id] = conversation
    engine.workload.note(conversation)
    return conversation


def append_message(
    engine: ChatEngine,
    conversation: Conversation,
    *,
    kind: SenderKind,
    sender_id: str,
    sender_name: str,
    text: str,
    client_id: str | None = None,
    changed: bool = False,
    attachment: dict[str, Any] | None = None,
    sent_at: datetime | None = None,
) -> Message:
    """Store a message (the caller publishes); `changed` stores the conversation first.
    `sent_at` is when the person wrote it if another clock knows (a messaging platform's
    timestamp, never later than now); otherwise now.

    Raises DuplicateMessage when `client_id` is already stored in the conversation.
    """
    if changed:
        engine.state.save_conversation(conversation)
    now = engine.clock()
    draft = _draft(
        conversation,
        kind=kind,
        sender_id=sender_id,
        sender_name=sender_name,
        text=text,
        client_id=client_id or f"sys-{uuid.uuid4().hex}",
        sent_at=now if sent_at is None else min(sent_at, now),
        attachment=attachment,
    )
    # Behind any relayed message still being committed (seqs in the order given).
    stored = engine.state.append_message_later(draft, _same).result()
    if stored.duplicate:
        raise DuplicateMessage(conversation.conversation_id, draft.client_id)
    note_message(conversation, stored.message.seq, kind, stored.message.sent_at)
    return stored.message


def _same(result: AppendResult) -> AppendResult:
    return result


def _draft(
    conversation: Conversation,
    *,
    kind: SenderKind,
    sender_id: str,
    sender_name: str,
    text: str,
    client_id: str,
    sent_at: datetime,
    attachment: dict[str, Any] | None = None,
) -> Message:
    """A message before it is stored: the state (or the relay script) gives its seq."""
    return Message(
        conversation_id=conversation.conversation_id,
        seq=0,
        client_id=client_id,
        sender_kind=kind,
        sender_id=sender_id,
        sender_name=sender_name,
        text=text,
        sent_at=sent_at,
        attachment=attachment,
    )


def message_audiences(
    conversation: Conversation, view: dict[str, Any], visitor_text: str
) -> list[tuple[dict[str, Any], set[str]]]:
    """Who hears a message frame, and as what: everyone the stored text, unless masking
    changed what the visitor typed (`visitor_text`, connector/crm/masking.py): then the
    agents the stored text and the visitor's own tabs what they typed."""
    if not visitor_text or visitor_text == view["text"]:
        return [(view, conversation_channels(conversation))]
    return [
        (view, conversation_channels(conversation, visitor=False)),
        ({**view, "text": visitor_text}, {chat_channel(conversation.conversation_id)}),
    ]


def note_message(conversation: Conversation, seq: int, kind: SenderKind, sent_at: datetime) -> None:
    """Bring the working copy's per-message fields up to date with a stored message (as
    `state.derive_message_fields` does when a conversation is loaded)."""
    conversation.last_seq = max(conversation.last_seq, seq)
    if kind is SenderKind.VISITOR:
        last = conversation.last_visitor_message_at
        conversation.last_visitor_message_at = sent_at if last is None else max(last, sent_at)
        if conversation.waiting_since is None:
            conversation.waiting_since = sent_at
    elif kind is SenderKind.AGENT:
        conversation.waiting_since = None


def append_system_line(engine: ChatEngine, conversation: Conversation, text: str) -> Message:
    """Store the changed conversation and a system line about it (the caller publishes)."""
    return append_message(
        engine,
        conversation,
        kind=SenderKind.SYSTEM,
        sender_id="",
        sender_name="",
        text=text,
        changed=True,
    )


def masked_for_chat(engine: ChatEngine, conversation: Conversation, text: str) -> str:
    """`text` as the chat stores it, whoever wrote it: masked by the organisation's rules
    and those of the chat's widget (connector/crm/masking.py). A consult between agents
    takes the widget of the chat it is about; a channel chat has none."""
    widget_id = conversation.widget_id
    if widget_id is None and conversation.consult_of is not None:
        about = find_conversation(engine, conversation.consult_of)
        widget_id = about.widget_id if about is not None else None
    widget = engine.directory.widget(widget_id) if widget_id else None
    return masked_text(
        widget.design if widget is not None else None,
        text,
        org_rules=engine.directory.masking_rules(),
    )


def store_sent(
    engine: ChatEngine,
    session_subscriber: Subscriber,
    conversation: Conversation,
    *,
    kind: SenderKind,
    sender_id: str,
    sender_name: str,
    text: str,
    client_id: str,
    sent_at: datetime | None = None,
) -> Message | None:
    """Store a person's message once per client_id; a resend gets the stored one back
    (`sent_at`: as `append_message`).

    Returns None when it was a resend (already answered). Raises ChatEnded when the
    chat is over and the message is new.
    """
    if not conversation.is_open:
        existing = engine.state.message_by_client_id(conversation.conversation_id, client_id)
        if existing is None:
            raise ChatEnded("This chat has ended.")
        engine.hub.send_to(session_subscriber, message_view(existing))
        return None
    try:
        return append_message(
            engine,
            conversation,
            kind=kind,
            sender_id=sender_id,
            sender_name=sender_name,
            text=text,
            client_id=client_id,
            sent_at=sent_at,
        )
    except DuplicateMessage:
        existing = engine.state.message_by_client_id(conversation.conversation_id, client_id)
        if existing is None:
            raise
        engine.hub.send_to(session_subscriber, message_view(existing))
        return None


def relay_sent(
    engine: ChatEngine,
    session_subscriber: Subscriber,
    conversation: Conversation,
    *,
    kind: SenderKind,
    sender_id: str,
    sender_name: str,
    text: str,
    client_id: str,
    visitor_text: str = "",
) -> None:
    """A person's message (`message.send`): `store_sent` then `publish_message`, with the
    commit and the publish off the engine lock (engine lock held by the caller).

    The message is queued for the state (`append_message_later`); once committed it is
    published, in commit order, and the sender's thread sends the frames when it leaves
    `changing()`. A resend of a stored client_id answers the stored message to the sender
    only. Raises ChatEnded when the chat is over and the message is new.
    """
    if not conversation.is_open:
        existing = engine.state.message_by_client_id(conversation.conversation_id, client_id)
        if existing is None:
            raise ChatEnded("This chat has ended.")
        engine.hub.send_to(session_subscriber, message_view(existing))
        return
    draft = _draft(
        conversation,
        kind=kind,
        sender_id=sender_id,
        sender_name=sender_name,
        text=text,
        client_id=client_id,
        sent_at=engine.clock(),
    )
    # Who hears it is decided now, under the lock, as for any event; the frames get the
    # seq once stored (the stored message is the draft with its seq).
    audiences = message_audiences(conversation, message_view(draft), visitor_text)

    def then(result: AppendResult) -> Queued:
        message = result.message
        if result.duplicate:
            engine.hub.send_to(session_subscriber, message_view(message))
        else:
            note_message(conversation, message.seq, message.sender_kind, message.sent_at)
            for body, channels in audiences:
                engine.bus.publish({**body, "seq": message.seq}, channels)
        return engine.hub.take_queued()

    engine.after_change(engine.state.append_message_later(draft, then))


def shared_relay(engine: ChatEngine) -> tuple[RedisLiveState, RedisBus] | None:
    """On Redis (several processes): the state and bus the relay path uses without the
    engine's lock or the org lease (`relay_shared`); None alone (`relay_sent`)."""
    if engine.org is None or not isinstance(engine.bus, RedisBus):
        return None
    return engine.org.state, engine.bus


def shared_chat(engine: ChatEngine, conversation_id: str | None) -> Conversation | None:
    """On Redis: the conversation as stored now (one GET, no lock, no lease), for the
    relay path's checks; its per-message fields are not derived."""
    relay = shared_relay(engine)
    assert relay is not None
    if not conversation_id:
        return None
    try:
        return relay[0].conversation_head(conversation_id)
    except redis.RedisError as error:
        raise ChatUnavailable("The chat service is busy; try again.") from error


def relay_shared(
    engine: ChatEngine,
    session_subscriber: Subscriber,
    conversation: Conversation,
    *,
    kind: SenderKind,
    sender_id: str,
    sender_name: str,
    text: str,
    client_id: str,
    visitor_text: str = "",
) -> None:
    """`relay_sent` on Redis: one script appends the message with the next seq (or finds
    its client_id), refuses a chat that ended meanwhile, and publishes it on the bus, so
    unrelated chats never wait for each other and a conversation's events leave in seq
    order. No engine lock, no org lease: every process (this one too) hears the message
    on the bus, and its working copy notes it at its next change (`ChatEngine.hear`).

    `conversation` is as `shared_chat` read it. Raises ChatEnded when the chat is over
    and the message is new, ChatUnavailable when Redis is away (the client resends).
    """
    relay = shared_relay(engine)
    assert relay is not None
    state, bus = relay
    draft = _draft(
        conversation,
        kind=kind,
        sender_id=sender_id,
        sender_name=sender_name,
        text=text,
        client_id=client_id,
        sent_at=engine.clock(),
    )
    bodies = [
        bus_body(body, channels)
        for body, channels in message_audiences(conversation, message_view(draft), visitor_text)
    ]
    try:
        result = state.relay_message(draft, bus.topic, bodies)
    except redis.RedisError as error:
        raise ChatUnavailable("The chat service is busy; try again.") from error
    if result is None:
        raise ChatEnded("This chat has ended.")
    if result.duplicate:
        engine.hub.send_to(session_subscriber, message_view(result.message))
        engine.hub.flush()


def publish_message(
    engine: ChatEngine, conversation: Conversation, message: Message, *, visitor_text: str = ""
) -> None:
    """Relay a stored message; `visitor_text`: what the visitor typed, when masking changed it
    (connector/crm/masking.py), for the visitor's own tabs only."""
    for body, channels in message_audiences(conversation, message_view(message), visitor_text):
        engine.bus.publish(body, channels)


def visitor_agent(engine: ChatEngine, conversation: Conversation) -> dict[str, Any] | None:
    """The agent as the visitor sees them: name, and image when the design shows it."""
    if conversation.owner_agent_id is None:
        return None
    profile = engine.directory.agent(conversation.owner_agent_id)
    if profile is None:
        return None
    widget = engine.directory.widget(conversation.widget_id) if conversation.widget_id else None
    show_image = widget is None or widget.design.show_agent_image
    return {"name": profile.name, "image": profile.image if show_image else None}


def refresh_availability(engine: ChatEngine, topic_ids: frozenset[str] | None) -> None:
    """Tell visitors of every widget whose availability changed.

    Only widgets sharing one of `topic_ids` (the topics of the agent who came, went or
    changed status) can have changed, so only those are recomputed, found in the roster;
    None: all, filed in the roster again.
    """
    # The topics some Available agent serves, once for all widgets (a widget sharing one
    # can chat); the widgets to look at come from the roster.
    topics = available_topics(agent_routes(engine))
    if topic_ids is None:
        widget_ids = {p.widget_id for p in engine.visitors.values() if p.connected}
        widget_ids |= set(engine.availability)
        engine.roster.file_widgets(widget_ids, engine.directory)
        engine.roster.file_visitors(engine.visitors.values(), engine.directory)
    else:
        widget_ids = engine.roster.widgets_for(topic_ids)
    for widget_id in widget_ids:
        widget = engine.directory.widget(widget_id)
        if (
            widget is not None
            and topic_ids is not None
            and not can_see(topic_ids, widget.topic_ids)
        ):
            continue
        available = widget is not None and widget_available(
            widget_on(engine, widget), widget.topic_ids, topics
        )
        if engine.announce_availability(widget_id, available):
            engine.bus.publish(
                events.event(events.AVAILABILITY, available=available),
                {widget_channel(widget_id)},
            )


def publish_visitor(engine: ChatEngine, presence: VisitorPresence) -> None:
    widget = engine.directory.widget(presence.widget_id)
    if widget is None:
        return
    engine.bus.publish(
        events.event(
            events.VISITOR_UPDATED, visitor=visitor_view(presence, widget_name=widget.name)
        ),
        watcher_channels(widget.topic_ids, agent_routes(engine, widget.topic_ids)),
    )


def publish_chat_updated(engine: ChatEngine, conversation: Conversation, *, skip: set[str]) -> None:
    channels = conversation_channels(conversation, visitor=False) - skip
    if channels:
        engine.bus.publish(
            events.event(events.CHAT_UPDATED, chat=chat_of(engine, conversation)), channels
        )


def widget_status(engine: ChatEngine, widget_id: str) -> tuple[WidgetLike, bool] | None:
    """The widget and whether a chat can start now, or None when there is no widget."""
    widget = engine.directory.widget(widget_id)
    if widget is None:
        return None
    if not widget_on(engine, widget):
        return widget, False
    with engine.reading():
        routes = agent_routes(engine, widget.topic_ids, available=True)
    return widget, widget_available(
        widget_on(engine, widget), widget.topic_ids, available_topics(routes)
    )


def agent_conversation(engine: ChatEngine, agent_id: str, conversation_id: str) -> Conversation:
    """An open or ended chat the agent takes part in; ChatNotFound otherwise."""
    conversation = find_conversation(engine, conversation_id)
    if conversation is None or not conversation.has_agent(agent_id):
        raise ChatNotFound("There is no such chat.")
    return conversation


def access_agent_chat(engine: ChatEngine, agent_id: str, conversation_id: str) -> Conversation:
    """A copy-safe view of a chat the agent takes part in; ChatNotFound otherwise."""
    with engine.reading():
        return agent_conversation(engine, agent_id, conversation_id)


def access_earlier_chat(
    engine: ChatEngine, agent_id: str, conversation_id: str, earlier_id: str
) -> list[dict[str, Any]]:
    """The messages of one of the visitor's earlier chats, for an agent in a chat with
    that visitor now (the History card). ChatNotFound unless `earlier_id` is in the
    chat's history."""
    with engine.reading():
        conversation = agent_conversation(engine, agent_id, conversation_id)
        if not conversation.visitor_id:
            raise ChatNotFound("There is no such chat.")
        history = engine.state.history(conversation.visitor_id, exclude=conversation_id)
        if earlier_id not in {entry.conversation_id for entry in history}:
            raise ChatNotFound("There is no such chat.")
        messages = engine.state.messages(earlier_id)
    return [message_view(message) for message in messages]


def transcript_text(engine: ChatEngine, conversation_id: str, *, limit: int) -> str:
    """The chat's readable transcript ("[10:02:11] Ann: hello" lines, system lines
    named "System"), cut at a message boundary to fit `limit` characters."""
    conversation = find_conversation(engine, conversation_id)
    messages = transcript_messages(engine.state.messages(conversation_id))
    started = conversation.started_at if conversation is not None else None
    return format_transcript(messages, started_at=started, limit=limit)


def do_set_regarding(
    engine: ChatEngine,
    agent_id: str,
    conversation_id: str,
    regarding: dict[str, str],
    *,
    contact: dict[str, str] | None = None,
) -> None:
    """Link the chat to a CRM record, and to `contact` (`{"id","name"}`) when the agent
    made or chose the visitor's contact; the chat's agents get `chat.updated`."""
    with engine.changing():
        conversation = agent_conversation(engine, agent_id, conversation_id)
        if conversation.finished:
            raise ChatEnded("This chat is already written to CRM.")
        conversation.regarding = dict(regarding)
        if contact is not None:
            conversation.contact = dict(contact)
        engine.state.save_conversation(conversation)
        publish_chat_updated(engine, conversation, skip=set())
