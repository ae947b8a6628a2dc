"""What visitors do: hello, page, start, send, typing, end, rate, leaving, and the
ticket fallback's checks."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from connector.chat import events
from connector.chat.actions.conversations import (
    agent_routes,
    find_conversation,
    masked_for_chat,
    publish_chat_updated,
    publish_visitor,
    relay_sent,
    relay_shared,
    shared_chat,
    shared_relay,
    visitor_agent,
    widget_on,
    without_requester,
)
from connector.chat.actions.finishing import end_chat, finish_chat
from connector.chat.actions.identification import identify_later
from connector.chat.actions.postpone import bring_back
from connector.chat.actions.queues import publish_waiting, route_waiting
from connector.chat.context import ContextError, parse_context
from connector.chat.engine import VISIT_GAP_SECS
from connector.chat.errors import (
    ChatConflict,
    ChatConsentRequired,
    ChatEnded,
    ChatIdentityMismatch,
    ChatInvalid,
    ChatInvalidContext,
    ChatInvalidIdentity,
    ChatLoginRequired,
    ChatNotFound,
    ChatUnavailable,
)
from connector.chat.model import (
    Conversation,
    ConversationKind,
    ConversationState,
    SenderKind,
    VisitorPresence,
)
from connector.chat.routing import (
    agents_for_chat,
    available_topics,
    chat_channel,
    conversation_channels,
    watcher_channels,
    widget_available,
    widget_channel,
)
from connector.chat.sessions import VisitorSession
from connector.chat.tokens import InvalidChatToken, InvalidIdentity
from connector.chat.views import (
    iso,
    visitor_chat_view,
)
from connector.crm.hours import takes_offline_messages
from connector.crm.ip_masking import masked_ip

if TYPE_CHECKING:
    from connector.chat.engine import ChatEngine

__all__ = [
    "TicketPlan",
    "choose_topic",
    "context_email",
    "do_visitor_disconnect",
    "do_visitor_end",
    "do_visitor_hello",
    "do_visitor_page",
    "do_visitor_rate",
    "do_visitor_send",
    "do_visitor_start",
    "do_visitor_typing",
    "prepare_ticket",
]

log = logging.getLogger(__name__)


def _display_text(value: str) -> str:
    """One line, single spaces (names are shown in lists and titles)."""
    return " ".join(value.split())


@dataclass(frozen=True)
class TicketPlan:
    """A checked `ticket.create`: the records to make (see `prepare_ticket`)."""

    visitor_id: str
    fields: dict[str, str]
    title: str  # the widget's first topic, by name ("" when it has none)
    contact: dict[str, str] | None  # {"id","name"} when identification found one
    identity_email: str | None
    owner: str | None = None  # the widget's owner (an ownerid bind): owns the records


def context_email(context: Mapping[str, Any]) -> str:
    """The context's `Email` value (name matched case-insensitively), trimmed; "" if none."""
    for name, item in context.items():
        if name.casefold() == "email":
            value = item.get("value") if isinstance(item, Mapping) else item
            return str(value).strip() if value is not None else ""
    return ""


def choose_topic(widget_topic_ids: frozenset[str], topic_id: str | None) -> str:
    """The topic a chat is routed by: the visitor's choice among the widget's topics, or
    the widget's only one. Raises ChatUnavailable for a widget without topics, ChatInvalid
    for a missing choice among several or a topic that is not the widget's."""
    if not widget_topic_ids:
        raise ChatUnavailable("This widget offers no topic.")
    if topic_id is None:
        if len(widget_topic_ids) > 1:
            raise ChatInvalid("Pick a topic.")
        return next(iter(widget_topic_ids))
    if topic_id.lower() not in widget_topic_ids:
        raise ChatInvalid("That topic is not offered here.")
    return topic_id.lower()


def do_visitor_hello(
    engine: ChatEngine,
    session: VisitorSession,
    *,
    widget_id: str,
    visitor_id: str,
    page: dict[str, str],
    resume_token: str | None = None,
    since_seq: int = 0,
    identity_token: str | None = None,
) -> None:
    """Register a visitor's tab; answer `hello.ok` (with the resumed chat, if any, and
    the verified identity).

    Raises ChatInvalid on a second hello, ChatNotFound for an unknown widget. A bad
    identity token answers `hello.ok` (anonymous), then raises ChatInvalidIdentity.
    """
    if session.visitor_id is not None:
        raise ChatInvalid("This connection already said hello.")
    widget = engine.directory.widget(widget_id)
    if widget is None:
        raise ChatNotFound("There is no such widget.")
    session.ip = masked_ip(widget.design, session.ip)
    identity_error: str | None = None
    if identity_token:
        try:
            session.identity = engine.tokens.verify_identity(
                identity_token, widget_secret=widget.secret, key_url=widget.design.auth_key_url
            )
        except InvalidIdentity as error:
            log.info("identity refused: %s", error)
            identity_error = "The identity token is not valid or has expired."
    visitor_id = _visitor_of(engine, session, widget_id, visitor_id, resume_token)
    with engine.changing():
        now = engine.clock()
        presence = engine.visitors.get(visitor_id) or engine.state.visitor(visitor_id)
        if presence is None or (
            not presence.connected
            and (now - presence.last_seen).total_seconds() > VISIT_GAP_SECS
            and presence.conversation_id is None
        ):
            presence = VisitorPresence(visitor_id, widget_id, first_seen=now, last_seen=now)
        was_connected = presence.connected
        presence.widget_id = widget_id
        presence.page = page
        presence.ip = session.ip
        presence.last_seen = now
        presence.connections = engine.count_connection(
            f"visitor:{visitor_id}", presence.connections, +1
        )
        engine.visitors[visitor_id] = presence
        engine.roster.note_visitor(visitor_id, widget.topic_ids)
        session.visitor_id, session.widget_id = visitor_id, widget_id
        engine.hub.subscribe(widget_channel(widget_id), session.subscriber)

        chat: dict[str, Any] | None = None
        conversation = _resume(engine, resume_token, visitor_id)
        handed_token: str | None = None
        if conversation is None and session.identity is not None and presence.conversation_id:
            # Another device of this verified person holds the open chat: this one gets
            # it too, with a resume token of its own.
            conversation = find_conversation(engine, presence.conversation_id)
            if conversation is None or not conversation.is_open:
                conversation = None
            else:
                handed_token = engine.tokens.issue(conversation.conversation_id, visitor_id)
        if conversation is not None:
            session.conversation_id = conversation.conversation_id
            engine.hub.subscribe(chat_channel(conversation.conversation_id), session.subscriber)
            if conversation.is_open:
                presence.conversation_id = conversation.conversation_id
                conversation.page = page.get("url", conversation.page)
            elif not conversation.finished and conversation.ended_at is not None:
                # Back on the site before the rating window closed: it opens again.
                engine.schedule_finish(conversation, conversation.ended_at + engine.rating_grace)
                conversation.finish_held = False  # a wrap-up's end waits for the rating too
                engine.state.save_conversation(conversation)
            chat = visitor_chat_view(
                conversation,
                agent=visitor_agent(engine, conversation),
                messages=engine.state.messages(conversation.conversation_id, since_seq=since_seq),
            )
            if handed_token is not None:
                chat["token"] = handed_token
        engine.state.save_visitor(presence)
        available = widget_available(
            widget_on(engine, widget),
            widget.topic_ids,
            available_topics(agent_routes(engine, widget.topic_ids, available=True)),
        )
        engine.availability[widget_id] = available
        engine.roster.note_widget(widget_id, widget.topic_ids)
        identity = session.identity.to_dict() if session.identity is not None else None
        engine.hub.send_to(
            session.subscriber,
            events.event(
                events.HELLO_OK,
                visitor_id=visitor_id,
                available=available,
                chat=chat,
                identity=identity,
            ),
        )
        publish_visitor(engine, presence)
        if conversation is not None and conversation.is_open and not was_connected:
            publish_chat_updated(engine, conversation, skip=set())
    if identity_error is not None:
        raise ChatInvalidIdentity(identity_error)


def _visitor_of(
    engine: ChatEngine, session: VisitorSession, widget_id: str, visitor_id: str, token: str | None
) -> str:
    """Who this connection is: a verified person is one visitor on every device (their
    open chat follows them), unless the browser resumes a chat its own id started (begun
    before the visitor signed in on the site: it stays theirs)."""
    if session.identity is None:
        return visitor_id
    if token:
        try:
            engine.tokens.verify(token, visitor_id)
            return visitor_id
        except InvalidChatToken:
            pass
    return engine.tokens.person_visitor_id(session.identity, widget_id)


def _resume(engine: ChatEngine, token: str | None, visitor_id: str) -> Conversation | None:
    if not token:
        return None
    try:
        conversation_id = engine.tokens.verify(token, visitor_id)
    except InvalidChatToken as error:
        log.info("resume refused: %s", error)
        return None
    conversation = find_conversation(engine, conversation_id)
    if conversation is None or conversation.visitor_id != visitor_id:
        return None
    return conversation


def _visitor_presence(engine: ChatEngine, session: VisitorSession) -> VisitorPresence:
    presence = engine.visitors.get(session.visitor_id) if session.visitor_id else None
    if presence is None:
        raise ChatInvalid("Say hello first.")
    return presence


def _visitor_conversation(engine: ChatEngine, session: VisitorSession) -> Conversation:
    _visitor_presence(engine, session)
    conversation = (
        find_conversation(engine, session.conversation_id) if session.conversation_id else None
    )
    if conversation is None:
        raise ChatNotFound("There is no chat on this connection.")
    return conversation


def do_visitor_page(engine: ChatEngine, session: VisitorSession, *, page: dict[str, str]) -> None:
    """The visitor's tab shows another page (presence only, no answer)."""
    with engine.changing():
        presence = _visitor_presence(engine, session)
        presence.page = page
        presence.last_seen = engine.clock()
        engine.state.save_visitor(presence)
        publish_visitor(engine, presence)


def do_visitor_start(
    engine: ChatEngine,
    session: VisitorSession,
    *,
    client_id: str,
    fields: Mapping[str, str],
    context: Mapping[str, Any] | None = None,
    topic_id: str | None = None,
    consent: bool = False,
) -> None:
    """Start a chat in the chosen topic's queue (actions/queues.py: it rings for one
    Available agent with free capacity, or waits; the visitor gets `chat.queued`).

    Answers `chat.started {conversation_id, token}`. Starting again (the same or another
    `client_id`) while the visitor's chat is open answers the open chat again.
    Raises ChatUnavailable when the widget is off, offers no topic, or no agent can
    take the chat; ChatInvalid when a required field is empty or the topic is missing
    or not the widget's; ChatInvalidContext, ChatLoginRequired, ChatIdentityMismatch
    (docs/protocol.md, "Chat options, identity and context"); ChatConsentRequired when
    the widget asks for consent and `consent` is false. Record identification
    then runs beside the engine and sends `chat.updated` when it finds the contact.
    """
    try:
        clean_context = parse_context(context)
    except ContextError as error:
        raise ChatInvalidContext(str(error)) from error
    identity = session.identity
    if identity is not None and identity.context:
        # An RS256 token's lwicontexts is the site's signed word: it wins over the page's.
        clean_context = {**clean_context, **identity.context}
    if identity is not None and identity.email:
        claimed = context_email(clean_context)
        if claimed and claimed.casefold() != identity.email.casefold():
            raise ChatIdentityMismatch("The context's Email is not the signed-in visitor's.")
    with engine.changing():
        presence = _visitor_presence(engine, session)
        assert session.visitor_id is not None and session.widget_id is not None
        open_chat = (
            engine.conversations.get(presence.conversation_id) if presence.conversation_id else None
        )
        if open_chat is not None and open_chat.is_open:
            # The chat belongs to the browser holding its resume token, not to whoever
            # sends its visitor_id (a cookie page scripts can read and agents are shown).
            if session.conversation_id != open_chat.conversation_id:
                raise ChatConflict("A chat is already open in another tab: continue it there.")
            engine.hub.subscribe(chat_channel(open_chat.conversation_id), session.subscriber)
            _reply_started(engine, session, open_chat)
            return
        widget = engine.directory.widget(session.widget_id)
        routes = (
            agent_routes(engine, widget.topic_ids, available=True) if widget is not None else []
        )
        if widget is None or not widget_available(
            widget_on(engine, widget), widget.topic_ids, available_topics(routes)
        ):
            raise ChatUnavailable("No agent is available right now.")
        if widget.design.require_login and identity is None:
            raise ChatLoginRequired("Sign in first: this chat is for identified visitors.")
        privacy = widget.design.privacy
        if privacy.consent_required and not consent:
            raise ChatConsentRequired("Please agree to the consent text to start the chat.")
        chosen = choose_topic(widget.topic_ids, topic_id)
        # A CRM user asking for help through the internal launcher, who is an agent
        # too, is not offered their own request.
        requester = identity.user_id if identity is not None and identity.source == "crm" else None
        offered = without_requester(engine, agents_for_chat(frozenset({chosen}), routes), requester)
        if not offered:
            raise ChatUnavailable("No agent is available for this topic right now.")
        clean = {key: value.strip() for key, value in fields.items()}
        if identity is not None and not clean.get("email"):
            clean["email"] = identity.email
        # A verified identity says who the visitor is: the form is not needed then.
        if widget.design.ask_name_email and identity is None:
            for field in widget.design.fields:
                if field.required and not clean.get(field.name):
                    raise ChatInvalid(f"Please fill in {field.label or field.name}.")
        now = engine.clock()
        if identity is not None and identity.name:
            name = _display_text(identity.name)
        else:
            name = _display_text(widget.design.display_name(clean)) or "Visitor"
        conversation = Conversation(
            conversation_id=str(uuid.uuid4()),
            kind=ConversationKind.VISITOR,
            state=ConversationState.WAITING,
            started_at=now,
            widget_id=widget.widget_id,
            visitor_id=session.visitor_id,
            visitor_name=name,
            visitor_fields=clean,
            context=clean_context,
            topic_id=chosen,
            identity=identity.to_dict() if identity is not None else None,
            page=presence.page.get("url", ""),
            ip=session.ip,
            waiting_since=now,
            start_client_id=client_id,
            requester_user_id=requester,
            # What the widget showed (this design's text) and when the visitor agreed.
            consent=(
                {"text": privacy.consent_text, "at": iso(now) or ""}
                if privacy.consent_required
                else None
            ),
        )
        engine.state.save_conversation(conversation)
        engine.conversations[conversation.conversation_id] = conversation
        engine.workload.note(conversation)
        presence.conversation_id = conversation.conversation_id
        presence.name = name
        engine.state.save_visitor(presence)
        session.conversation_id = conversation.conversation_id
        engine.hub.subscribe(chat_channel(conversation.conversation_id), session.subscriber)
        _reply_started(engine, session, conversation)
        # It rings for one agent with free capacity, or waits in the topic's queue.
        publish_waiting(engine, conversation)
        route_waiting(engine)
        publish_visitor(engine, presence)
        identify_later(engine, conversation, identity.email if identity is not None else None)


def _reply_started(engine: ChatEngine, session: VisitorSession, conversation: Conversation) -> None:
    assert session.visitor_id is not None
    engine.hub.send_to(
        session.subscriber,
        events.event(
            events.CHAT_STARTED,
            conversation_id=conversation.conversation_id,
            token=engine.tokens.issue(conversation.conversation_id, session.visitor_id),
        ),
    )


def do_visitor_send(
    engine: ChatEngine, session: VisitorSession, *, client_id: str, text: str
) -> None:
    """Store the visitor's message and relay it (resending a client_id is a no-op).
    Agents and the transcript get the masked text; the visitor's tabs what they typed."""
    if shared_relay(engine) is not None:
        conversation = _shared_visitor_conversation(engine, session)
        if conversation.postponed_until is None:  # a postponed chat comes back: locked path
            relay_shared(
                engine,
                session.subscriber,
                conversation,
                kind=SenderKind.VISITOR,
                sender_id=conversation.visitor_id or "",
                sender_name=conversation.visitor_name,
                text=masked_for_chat(engine, conversation, text),
                client_id=client_id,
                visitor_text=text,
            )
            return
    with engine.changing():
        conversation = _visitor_conversation(engine, session)
        relay_sent(
            engine,
            session.subscriber,
            conversation,
            kind=SenderKind.VISITOR,
            sender_id=conversation.visitor_id or "",
            sender_name=conversation.visitor_name,
            text=masked_for_chat(engine, conversation, text),
            client_id=client_id,
            visitor_text=text,
        )
        bring_back(engine, conversation)  # a postponed chat: the customer wrote


def _shared_visitor_conversation(engine: ChatEngine, session: VisitorSession) -> Conversation:
    """`_visitor_conversation` on Redis, as stored now (no lock, no lease)."""
    if session.visitor_id is None:
        raise ChatInvalid("Say hello first.")
    conversation = shared_chat(engine, session.conversation_id)
    if conversation is None or conversation.visitor_id != session.visitor_id:
        raise ChatNotFound("There is no chat on this connection.")
    return conversation


def do_visitor_typing(engine: ChatEngine, session: VisitorSession, *, on: bool) -> None:
    """Forward the visitor's typing state to the chat's agents (on Redis without the
    engine's lock or the org lease: a read and a publish)."""
    if shared_relay(engine) is not None:
        conversation = _shared_visitor_conversation(engine, session)
        if conversation.is_open:
            _publish_typing(engine, conversation, on=on)
        return
    with engine.changing():
        conversation = _visitor_conversation(engine, session)
        if conversation.is_open:
            _publish_typing(engine, conversation, on=on)


def _publish_typing(engine: ChatEngine, conversation: Conversation, *, on: bool) -> None:
    engine.bus.publish(
        events.event(
            events.TYPING,
            conversation_id=conversation.conversation_id,
            on=on,
            name=conversation.visitor_name,
        ),
        conversation_channels(conversation, visitor=False),
    )


def do_visitor_end(engine: ChatEngine, session: VisitorSession) -> None:
    """The visitor ends the chat."""
    with engine.changing():
        conversation = _visitor_conversation(engine, session)
        if not conversation.is_open:
            raise ChatEnded("This chat has ended.")
        end_chat(engine, conversation, by="visitor", name=conversation.visitor_name)


def do_visitor_rate(engine: ChatEngine, session: VisitorSession, *, rating: int) -> None:
    """Store the visitor's rating (1-5); an ended chat is then written at once.

    Raises ChatEnded when the chat's activity was already written.
    """
    with engine.changing():
        conversation = _visitor_conversation(engine, session)
        if conversation.finished or conversation.conversation_id in engine.finishing:
            raise ChatEnded("This chat can no longer be rated.")
        conversation.rating = rating
        if conversation.state is ConversationState.ENDED:
            # Nothing left to wait for: saved as due now, so a crash before the write
            # below is made good within seconds of the restart, not after the grace.
            engine.schedule_finish(conversation, engine.clock())
        engine.state.save_conversation(conversation)
        engine.bus.publish(
            events.event(
                events.CHAT_RATED,
                conversation_id=conversation.conversation_id,
                rating=rating,
            ),
            conversation_channels(conversation),
        )
        if conversation.state is ConversationState.ENDED:
            finish_chat(engine, conversation)


def do_visitor_disconnect(engine: ChatEngine, session: VisitorSession) -> None:
    """The visitor's tab closed."""
    with engine.changing():
        engine.hub.unsubscribe_all(session.subscriber)
        if not session.visitor_id:
            return
        presence = engine.visitors.get(session.visitor_id)
        connections = engine.count_connection(
            f"visitor:{session.visitor_id}", presence.connections if presence else 0, -1
        )
        if presence is None:
            return
        presence.connections = connections
        if presence.connected:
            return
        now = engine.clock()
        presence.last_seen = now
        engine.state.save_visitor(presence)
        conversation = (
            engine.conversations.get(session.conversation_id) if session.conversation_id else None
        )
        if conversation is not None and not conversation.is_open:
            if not conversation.finished:
                leave_due = now + engine.leave_grace
                due = conversation.finish_due_at
                engine.schedule_finish(conversation, min(due, leave_due) if due else leave_due)
                engine.state.save_conversation(conversation)
        open_chat = (
            engine.conversations.get(presence.conversation_id) if presence.conversation_id else None
        )
        if open_chat is not None and open_chat.is_open:
            publish_visitor(engine, presence)
            publish_chat_updated(engine, open_chat, skip=set())
            return
        widget = engine.directory.widget(presence.widget_id)
        if widget is not None:
            engine.bus.publish(
                events.event(events.VISITOR_LEFT, visitor_id=presence.visitor_id),
                watcher_channels(widget.topic_ids, agent_routes(engine, widget.topic_ids)),
            )
        del engine.visitors[presence.visitor_id]


def prepare_ticket(
    engine: ChatEngine, session: VisitorSession, *, fields: Mapping[str, str]
) -> TicketPlan:
    """What a `ticket.create` needs, checked; the caller creates the records off the
    engine lock. Raises ChatInvalid when the widget takes no messages or a required
    field is empty, ChatLoginRequired when the widget needs an identity."""
    with engine.reading():
        _visitor_presence(engine, session)
        assert session.visitor_id is not None and session.widget_id is not None
        widget = engine.directory.widget(session.widget_id)
        if widget is None or not (
            widget.design.ticket_fallback.enabled
            or takes_offline_messages(widget.design, engine.clock())
        ):
            raise ChatInvalid("This widget takes no messages.")
        if widget.design.require_login and session.identity is None:
            raise ChatLoginRequired("Sign in first: this chat is for identified visitors.")
        clean = {key: value.strip() for key, value in fields.items() if value.strip()}
        if widget.design.ask_name_email and session.identity is None:
            for field in widget.design.fields:
                if field.required and not clean.get(field.name):
                    raise ChatInvalid(f"Please fill in {field.label or field.name}.")
        identity = session.identity
        if identity is not None:
            clean.setdefault("email", identity.email)
            if identity.name and "firstname" not in clean and "lastname" not in clean:
                clean["lastname"] = identity.name
        topics = engine.directory.topics()
        names = sorted(topics[t].name for t in widget.topic_ids if t in topics)
        contact = None
        chat = (
            find_conversation(engine, session.conversation_id) if session.conversation_id else None
        )
        if chat is not None and chat.contact is not None:
            contact = dict(chat.contact)
        return TicketPlan(
            visitor_id=session.visitor_id,
            fields=clean,
            title=names[0] if names else "",
            contact=contact,
            identity_email=identity.email if identity is not None else None,
            owner=widget.owner,
        )
