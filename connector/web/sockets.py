"""The two WebSockets of docs/protocol.md: `/ws/visitor` and `/ws/agent?token=…`.

Each socket's thread reads frames, checks size, JSON and the frame model
(`connector.chat.frames`), applies the per-connection rate limit, and calls one engine
action. Refusals become `error` frames; the connection stays open, except when an agent
is not signed in or not allowed (then it is closed). A client never sees a stack trace.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from flask import Blueprint, current_app, request
from flask_sock import Sock

from connector.chat import events
from connector.chat.actions import (
    agents,
    consults,
    important,
    offers,
    postpone,
    queues,
    reads,
    supervision,
    visitors,
)
from connector.chat.engine import ChatEngine
from connector.chat.errors import ChatError, ChatUnavailable
from connector.chat.frames import (
    AgentChatStart,
    AgentEnd,
    AgentRead,
    AgentSend,
    AgentTyping,
    ChatAccept,
    ChatImportant,
    ChatInvite,
    ChatLabels,
    ChatPostpone,
    ChatRate,
    ChatReject,
    ChatResync,
    ChatStart,
    ChatTransfer,
    ConsultStart,
    FrameError,
    Hello,
    PageFrame,
    Ping,
    StatusSet,
    SupervisorJoin,
    TicketCreate,
    TokenBucket,
    VisitorEnd,
    VisitorRead,
    VisitorSend,
    VisitorTyping,
    parse_agent_frame,
    parse_visitor_frame,
)
from connector.chat.hub import Subscriber
from connector.chat.sessions import AgentSession, VisitorSession
from connector.crm.chat_activity import CHAT_ACTIVITY_KIND
from connector.crm.identification import identify
from connector.crm.masking import masked_text
from connector.crm.regarding import Regarding
from connector.crm.tickets import create_ticket, message_chat, ticket_ids
from connector.dataverse import DataverseError
from connector.services import services_of
from connector.web import open_sockets
from connector.web.auth import (
    AGENT_ROLES,
    AGENT_SUBPROTOCOL,
    STANDING_MAX_AGE_SECS,
    SUPERVISOR_ROLES,
    current_roles_of,
    signed_in_user,
    socket_token,
)
from connector.web.errors import ApiError

__all__ = ["SOCK_SERVER_OPTIONS", "bp", "client_ip", "engine_of", "sock"]

log = logging.getLogger(__name__)

bp = Blueprint("sockets", __name__)
sock = Sock()

# Pings keep proxies from closing idle sockets and find dead clients (no pong by the next
# ping closes the socket). The size cap only guards memory: frames over 16 KiB are
# refused politely by `connector.chat.frames` while the socket stays open.
SOCK_SERVER_OPTIONS: dict[str, Any] = {
    "ping_interval": 25,
    "max_message_size": 1024 * 1024,
    # The agent socket's protocol; its token rides beside it (auth.agent_subprotocols).
    "subprotocols": [AGENT_SUBPROTOCOL],
}
# WebSocket close code for a policy violation (RFC 6455).
CLOSE_POLICY_VIOLATION = 1008
# How long a refused socket waits for the client to close before the server does.
REFUSE_LINGER_SECS = 2.0
# What a console shows while the organisation is unsubscribed (the reason chat stopped).
UNSUBSCRIBED_MESSAGE = (
    "Your organisation has unsubscribed from CRM Chat, so chat is stopped everywhere. "
    "Every chat and record is kept; an administrator can subscribe again in Settings."
)


def engine_of(app: Any) -> ChatEngine:
    engine: ChatEngine = services_of(app).engine
    return engine


def client_ip() -> str:
    """The visitor's address (the proxy's X-Forwarded-For is applied by `create_app`)."""
    return (request.remote_addr or "")[:64]


def _send_frame(engine: ChatEngine, subscriber: Subscriber, frame: dict[str, Any]) -> None:
    engine.hub.send_to(subscriber, frame)
    engine.hub.flush()


class SocketRefused(Exception):
    """The socket is refused for good: `_serve` sends the error frame and closes it."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def _ref_of(frame: Any) -> str:
    return str(getattr(frame, "client_id", None) or frame.type)


def _serve(
    engine: ChatEngine,
    ws: Any,
    subscriber: Subscriber,
    parse: Any,
    act: Any,
    *,
    allowed: Callable[[], bool] | None = None,
) -> None:
    """Read frames until the socket closes; `act(frame)` runs each valid one.

    With `allowed`, the socket is closed (`forbidden`) as soon as it answers False, checked
    on every frame and at least every STANDING_MAX_AGE_SECS on an idle socket.
    """
    bucket = TokenBucket()
    while True:
        raw = ws.receive(timeout=STANDING_MAX_AGE_SECS if allowed is not None else None)
        if allowed is not None and not allowed():
            _refuse(ws, "forbidden", "Your access to CRM Chat was removed.")
            return
        if raw is None:
            continue
        frame: Any = None
        try:
            frame = parse(raw)
            if isinstance(frame, Ping):
                _send_frame(engine, subscriber, events.event(events.PONG))
                continue
            if not bucket.take():
                retry = bucket.retry_after_ms()
                _send_frame(
                    engine,
                    subscriber,
                    events.error_event(
                        "rate_limited",
                        "Slow down: too many frames.",
                        ref=_ref_of(frame),
                        retry_after_ms=retry,
                    ),
                )
                continue
            act(frame)
        except SocketRefused as refused:
            _refuse(ws, refused.code, refused.message)
            return
        except FrameError as error:
            _send_frame(
                engine, subscriber, events.error_event(error.code, error.message, ref=error.ref)
            )
        except ChatError as error:
            ref = _ref_of(frame) if frame is not None else None
            _send_frame(engine, subscriber, events.error_event(error.code, error.message, ref=ref))
        except Exception:
            log.exception("chat frame failed")
            ref = _ref_of(frame) if frame is not None else None
            _send_frame(
                engine,
                subscriber,
                events.error_event("internal_error", "Something went wrong on our side.", ref=ref),
            )


def visitor_socket(ws: Any) -> None:
    engine = engine_of(current_app)
    subscriber = Subscriber(ws.send, name="visitor")
    session = VisitorSession(subscriber, ip=client_ip())

    def act(frame: Any) -> None:
        match frame:
            case Hello():
                _check_hello_widget(frame.widget_id)
                visitors.do_visitor_hello(
                    engine,
                    session,
                    widget_id=frame.widget_id,
                    visitor_id=frame.visitor_id,
                    page=frame.page.model_dump(),
                    resume_token=frame.resume.token if frame.resume else None,
                    since_seq=frame.resume.since_seq if frame.resume else 0,
                    identity_token=frame.identity.token if frame.identity else None,
                )
            case PageFrame():
                visitors.do_visitor_page(engine, session, page=frame.page.model_dump())
            case ChatStart():
                if _too_many(engine, session, frame.type, frame.client_id):
                    return
                visitors.do_visitor_start(
                    engine,
                    session,
                    client_id=frame.client_id,
                    fields=frame.fields,
                    context=frame.context,
                    topic_id=frame.topic_id,
                    consent=frame.consent,
                )
            case TicketCreate():
                if _too_many(engine, session, frame.type, frame.client_id):
                    return
                _create_ticket(engine, session, frame)
            case VisitorSend():
                visitors.do_visitor_send(
                    engine, session, client_id=frame.client_id, text=frame.text
                )
            case VisitorTyping():
                visitors.do_visitor_typing(engine, session, on=frame.on)
            case VisitorRead():
                reads.do_visitor_read(
                    engine, session, seq=frame.seq, conversation_id=frame.conversation_id
                )
            case VisitorEnd():
                visitors.do_visitor_end(engine, session)
            case ChatRate():
                visitors.do_visitor_rate(engine, session, rating=frame.rating)

    try:
        with open_sockets.track(ws, "visitor"):
            _serve(engine, ws, subscriber, parse_visitor_frame, act)
    finally:
        visitors.do_visitor_disconnect(engine, session)


def _check_hello_widget(widget_id: str) -> None:
    """Refuse the socket when its hello may not name `widget_id` on this page's site
    (allowed domains, connector/web/public_limits.py)."""
    # Imported here: public_limits wraps this module's views, so it imports this module.
    from connector.web.public_limits import hello_widget_refusal

    refusal = hello_widget_refusal(widget_id)
    if refusal is not None:
        raise SocketRefused("origin_not_allowed", refusal)


def _too_many(engine: ChatEngine, session: VisitorSession, frame_type: str, ref: str) -> bool:
    """Whether the address or the widget started too many chats (or tickets) lately,
    counted across processes (connector/web/public_limits.py); if so, say so."""
    # Imported here: public_limits wraps this module's views, so it imports this module.
    from connector.web.public_limits import frame_limited

    if session.widget_id is None:
        return False  # no hello yet: the engine refuses the frame itself
    retry_ms = frame_limited(current_app, frame_type, session.widget_id, session.ip)
    if retry_ms is None:
        return False
    what = "chats were started" if frame_type == "chat.start" else "messages were left"
    _send_frame(
        engine,
        session.subscriber,
        events.error_event(
            "rate_limited",
            f"Too many {what} from here; please try again later.",
            ref=ref,
            retry_after_ms=retry_ms,
        ),
    )
    return True


def _create_ticket(engine: ChatEngine, session: VisitorSession, frame: TicketCreate) -> None:
    """Make the visitor's message a case, off the engine lock; answer `ticket.created`.

    Idempotent on the frame's client_id: the records' ids derive from it.
    """
    plan = visitors.prepare_ticket(engine, session, fields=frame.fields)
    client = services_of(current_app).dataverse
    contact = Regarding.from_dict({"table": "contact", **plan.contact}) if plan.contact else None
    contact_id, case_id = ticket_ids(plan.visitor_id, frame.client_id)
    widget = engine.directory.widget(session.widget_id or "")
    # The case's description is stored in CRM: the masking rules apply to it.
    message = masked_text(
        widget.design if widget is not None else None,
        frame.message,
        org_rules=engine.directory.masking_rules(),
    )
    # Without Dynamics 365 Customer Service there is no case: the contact, and the
    # message as a chat activity regarding it (connector/crm/tickets.py).
    app_tables = services_of(current_app).app_tables
    cases = app_tables is None or app_tables.has("incident")
    try:
        # The one active contact with the visitor's email (verified first, else typed) is
        # reused, so a second message from the same address makes no second contact.
        email = plan.identity_email or plan.fields.get("email")
        if contact is None and email:
            contact = identify(client, ("emailaddress1", email), cases=cases).contact
        ticket = create_ticket(
            client,
            plan.fields,
            message=message,
            topic=plan.title,
            contact=contact,
            contact_id=contact_id,
            case_id=case_id,
            owner=plan.owner,
            cases=cases,
        )
    except DataverseError as error:
        log.warning("creating a ticket failed: %s", error)
        raise ChatUnavailable("Your message could not be saved; please try again.") from error
    if ticket.case is None:
        chat = message_chat(
            message_id=case_id,
            contact=ticket.contact,
            fields=plan.fields,
            message=message,
            topic=plan.title,
            widget_id=session.widget_id,
            visitor_id=plan.visitor_id,
            owner=plan.owner,
            at=engine.clock(),
        )
        # The outbox ignores a repeated key: the same message (client_id) is written once.
        engine.outbox.enqueue(CHAT_ACTIVITY_KIND, case_id, chat.to_dict())
    _send_frame(
        engine,
        session.subscriber,
        events.event(
            events.TICKET_CREATED, client_id=frame.client_id, ticket_number=ticket.ticket_number
        ),
    )


def _refuse(ws: Any, code: str, message: str) -> None:
    """Send the error, give the client a moment to close first, then close.

    Closing at once would reset the TCP connection if the client's next frame is already
    on its way, and a reset makes the client drop the unread error frame.
    """
    ws.send(events.json_frame(events.error_event(code, message)))
    deadline = time.monotonic() + REFUSE_LINGER_SECS
    while (left := deadline - time.monotonic()) > 0:
        ws.receive(timeout=left)  # ignored; raises ConnectionClosed when the client closes
    ws.close(reason=CLOSE_POLICY_VIOLATION, message=message[:100])


def agent_socket(ws: Any) -> None:
    engine = engine_of(current_app)
    try:
        user = signed_in_user(socket_token(), AGENT_ROLES)
    except ApiError as error:
        _refuse(ws, error.code, error.message)
        return
    if not engine.directory.subscribed():
        _refuse(ws, "unsubscribed", UNSUBSCRIBED_MESSAGE)
        return
    profile = engine.directory.agent_for_user(user.id)
    if profile is None:
        _refuse(ws, "forbidden", "You have no CRM Chat agent profile; ask your administrator.")
        return
    subscriber = Subscriber(ws.send, name=f"agent {profile.agent_id}")
    session = AgentSession(
        subscriber, profile.agent_id, supervisor=bool(user.roles & SUPERVISOR_ROLES)
    )

    def act(frame: Any) -> None:
        match frame:
            case StatusSet():
                agents.do_agent_set_status(engine, session, status=frame.status)
            case ChatAccept():
                agents.do_agent_accept(engine, session, conversation_id=frame.conversation_id)
            case ChatReject():
                offers.do_agent_reject(engine, session, conversation_id=frame.conversation_id)
            case AgentSend():
                agents.do_agent_send(
                    engine,
                    session,
                    conversation_id=frame.conversation_id,
                    client_id=frame.client_id,
                    text=frame.text,
                )
            case ChatResync():
                agents.do_agent_resync(
                    engine,
                    session,
                    conversation_id=frame.conversation_id,
                    since_seq=frame.since_seq,
                )
            case ChatInvite():
                agents.do_agent_invite(
                    engine,
                    session,
                    conversation_id=frame.conversation_id,
                    agent_id=frame.agent_id,
                    topic_id=frame.topic_id,
                )
            case ChatTransfer() if frame.topic_id is not None:
                queues.do_agent_transfer_to_queue(
                    engine, session, conversation_id=frame.conversation_id, topic_id=frame.topic_id
                )
            case ChatTransfer() if frame.agent_id is not None:
                agents.do_agent_transfer(
                    engine, session, conversation_id=frame.conversation_id, agent_id=frame.agent_id
                )
            case AgentEnd():
                agents.do_agent_end(
                    engine,
                    session,
                    conversation_id=frame.conversation_id,
                    disposition=frame.disposition,
                )
            case ChatPostpone():
                postpone.do_agent_postpone(
                    engine, session, conversation_id=frame.conversation_id, until=frame.until
                )
            case ChatImportant():
                important.do_agent_mark_important(
                    engine,
                    session,
                    conversation_id=frame.conversation_id,
                    important=frame.important,
                )
            case AgentChatStart():
                agents.do_agent_chat_start(engine, session, agent_id=frame.agent_id)
            case SupervisorJoin():
                supervision.do_supervisor_join(
                    engine, session, conversation_id=frame.conversation_id
                )
            case ConsultStart():
                consults.do_consult_start(
                    engine, session, conversation_id=frame.conversation_id, agent_id=frame.agent_id
                )
            case AgentRead():
                reads.do_agent_read(
                    engine, session, conversation_id=frame.conversation_id, seq=frame.seq
                )
            case AgentTyping():
                agents.do_agent_typing(
                    engine, session, conversation_id=frame.conversation_id, on=frame.on
                )
            case ChatLabels():
                agents.do_agent_labels(
                    engine,
                    session,
                    conversation_id=frame.conversation_id,
                    label_ids=frame.label_ids,
                )

    def allowed() -> bool:
        return bool(current_roles_of(profile.user_id) & AGENT_ROLES)

    agents.do_agent_connect(engine, session)
    supervision.watch_board(engine, session)
    try:
        with open_sockets.track(ws, "agent"):
            _serve(engine, ws, subscriber, parse_agent_frame, act, allowed=allowed)
    finally:
        agents.do_agent_disconnect(engine, session)


# Registered by call, not decorator: flask-sock's decorator is untyped.
sock.route("/ws/visitor", bp=bp)(visitor_socket)
sock.route("/ws/agent", bp=bp)(agent_socket)
