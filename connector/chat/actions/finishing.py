"""How chats end and reach CRM: ending, releasing the visitor, building the activity,
the due finishes and the timeouts (see `connector.chat.actions`, "Finishing a chat")."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from connector.chat import events
from connector.chat.actions.conversations import (
    agent_presence,
    agent_routes,
    append_system_line,
    publish_chat_updated,
    publish_message,
    publish_visitor,
    routing_topics,
)
from connector.chat.actions.postpone import forget_postpone
from connector.chat.actions.queues import blocks_in_wrapup, note_chat_ended, route_waiting
from connector.chat.dispositions import topic_dispositions
from connector.chat.finish import finished_chat_payload
from connector.chat.model import (
    Conversation,
    ConversationKind,
    ConversationState,
    VisitorPresence,
)
from connector.chat.routing import (
    conversation_channels,
    watcher_channels,
)
from connector.chat.timers import DueTimer
from connector.crm.design import DEFAULT_INACTIVE_CLOSE_SECS
from connector.crm.directory import DEFAULT_WRAPUP_SECS

if TYPE_CHECKING:
    from connector.chat.engine import ChatEngine

__all__ = [
    "FINISH_TIMER",
    "WRAPUP_TIMER",
    "end_chat",
    "end_wrapup",
    "finish_chat",
    "finish_due",
    "release_visitor",
    "run_timeouts",
    "visitor_left",
    "wrapup_due",
]

log = logging.getLogger(__name__)

# The timer kind of a chat's finish (rating grace, leave grace): key = conversation id.
FINISH_TIMER = "finish"
# The timer kind of a wrap-up's time limit: key = conversation id. The limit is the
# topic's `crmchat_wrapupsecs` (30-3,600 s; the shortest of the chat's topics), five
# minutes when empty (DEFAULT_WRAPUP_SECS): several times what choosing from a list takes,
# and short enough that the activity reaches CRM the same hour. Contact-centre products
# bound it alike (Salesforce Omni-Channel's after-conversation work timer takes 10-3,600 s:
# ServiceChannel.AfterConvoWorkMaxTime).
WRAPUP_TIMER = "wrapup"


def end_chat(
    engine: ChatEngine, conversation: Conversation, *, by: str, name: str, line: str | None = None
) -> None:
    """End an open conversation (caller holds the lock); `line` is the system line,
    "<name> ended the chat." unless given."""
    was_waiting = conversation.state is ConversationState.WAITING
    now = engine.clock()
    if conversation.kind is ConversationKind.VISITOR:
        note_chat_ended(engine, conversation)
    conversation.state = ConversationState.ENDED
    conversation.ended_at = now
    conversation.ended_by = by
    conversation.waiting_since = None
    forget_postpone(engine, conversation)  # over: it comes back to end (or wrap up)
    if conversation.kind is ConversationKind.VISITOR:
        engine.schedule_finish(conversation, now + engine.rating_grace)
        _begin_wrapup(engine, conversation, by)
    message = append_system_line(engine, conversation, line or f"{name} ended the chat.")
    publish_message(engine, conversation, message)
    engine.bus.publish(
        events.event(events.CHAT_ENDED, conversation_id=conversation.conversation_id, by=by),
        conversation_channels(conversation),
    )
    if conversation.kind is not ConversationKind.VISITOR:
        engine.conversations.pop(conversation.conversation_id, None)
        return
    # Its consults end with it: their notes are written with its activity, complete.
    for consult_id in conversation.consult_ids:
        consult = engine.conversations.get(consult_id)
        if consult is not None and consult.is_open:
            end_chat(engine, consult, by=by, name=name, line="The chat with the customer ended.")
    if was_waiting:
        topics = routing_topics(engine, conversation)
        engine.bus.publish(
            events.event(events.CHAT_WITHDRAWN, conversation_id=conversation.conversation_id),
            watcher_channels(topics, agent_routes(engine, topics)),
        )
    if conversation.wrapup_until is not None:
        publish_chat_updated(engine, conversation, skip=set())  # the agents' wrap-up box
    presence = release_visitor(engine, conversation)
    route_waiting(engine)  # a place freed, or the queue moved up
    widget = engine.directory.widget(conversation.widget_id) if conversation.widget_id else None
    wants_rating = widget is not None and widget.design.rating
    if (
        conversation.rating is not None
        or not wants_rating
        or not (presence is not None and presence.connected)
    ):
        finish_chat(engine, conversation)


def _begin_wrapup(engine: ChatEngine, conversation: Conversation, by: str) -> None:
    """A chat the agent did not end (the visitor did, or it closed after they left) waits
    for its agent's disposition when its topics define some (lock held; stored by the
    caller's system line)."""
    topic_ids = routing_topics(engine, conversation)
    topics = engine.directory.topics()
    if (
        by == "agent"
        or conversation.disposition is not None
        or conversation.accepted_at is None
        or not conversation.active_agent_ids()
        or not topic_dispositions(topic_ids, topics)
    ):
        return
    limits = [topics[t].wrapup_secs for t in topic_ids if t in topics]
    secs = min(limits) if limits else DEFAULT_WRAPUP_SECS
    conversation.wrapup_until = engine.clock() + timedelta(seconds=secs)
    engine.timers.set(WRAPUP_TIMER, conversation.conversation_id, conversation.wrapup_until)


def end_wrapup(engine: ChatEngine, conversation: Conversation, disposition: str | None) -> None:
    """The wrap-up is over (lock held): with the agent's disposition, or None when its time
    ran out. The agents get `chat.updated`; the activity is written now when its write
    was already due (`finish_held`), else when the rating window closes. When the wrap-up
    held its agents' capacity, the place frees now: they are idle from now and the queue
    may ring for them."""
    blocked = blocks_in_wrapup(engine, conversation)
    conversation.wrapup_until = None
    conversation.disposition = disposition
    engine.timers.cancel(WRAPUP_TIMER, conversation.conversation_id)
    held = conversation.finish_held
    conversation.finish_held = False
    if held:
        engine.schedule_finish(conversation, engine.clock())
    engine.state.save_conversation(conversation)
    publish_chat_updated(engine, conversation, skip=set())
    if blocked:
        now = engine.clock()
        for agent_id in conversation.active_agent_ids():
            agent_presence(engine, agent_id).idle_since = now
            engine.state.save_agent_idle(agent_id, now)
        route_waiting(engine)
    if held:
        finish_chat(engine, conversation)


def release_visitor(engine: ChatEngine, conversation: Conversation) -> VisitorPresence | None:
    """Free the chat's visitor for a new chat (lock held); returns their presence.

    A visitor with no tab open any more leaves the Visitors list now that their chat
    is over (they stayed on it only for the chat's sake).
    """
    presence = engine.visitors.get(conversation.visitor_id or "")
    if presence is not None and presence.conversation_id == conversation.conversation_id:
        presence.conversation_id = None
        engine.state.save_visitor(presence)
        if presence.connected:
            publish_visitor(engine, presence)
        else:
            visitor_left(engine, presence)
    return presence


def visitor_left(engine: ChatEngine, presence: VisitorPresence) -> None:
    """Take a departed visitor off every Visitors list (lock held)."""
    widget = engine.directory.widget(presence.widget_id)
    if widget is not None:
        engine.bus.publish(
            events.event(events.VISITOR_LEFT, visitor_id=presence.visitor_id),
            watcher_channels(widget.topic_ids, agent_routes(engine, widget.topic_ids)),
        )
    engine.visitors.pop(presence.visitor_id, None)


def finish_chat(engine: ChatEngine, conversation: Conversation) -> None:
    """Build the chat activity now; queue it once the lock is released (lock held).

    The outbox commits with a full fsync; doing that outside the engine lock keeps it
    off every other chat's relay path. Until then the chat is in `engine.finishing`: no rating
    and no second finish.
    """
    if conversation.conversation_id in engine.finishing:
        return
    if conversation.wrapup_until is not None:
        # Written once, with the disposition: the write waits for the wrap-up's end (due
        # at its time limit at the latest, so a restart re-arms it from the stored time).
        conversation.finish_held = True
        engine.schedule_finish(conversation, conversation.wrapup_until)
        engine.state.save_conversation(conversation)
        return
    consults = []
    for consult_id in conversation.consult_ids:
        consult = engine.conversations.get(consult_id) or engine.state.conversation(consult_id)
        if consult is not None:
            consults.append((consult, engine.state.messages(consult_id)))
    messages = engine.state.messages(conversation.conversation_id)
    files = []
    for message in messages:
        if message.attachment:
            data = engine.state.attachment_data(
                conversation.conversation_id, str(message.attachment["id"])
            )
            if data is not None:
                files.append((message, data))
    payload = finished_chat_payload(conversation, messages, engine.directory, consults, files)
    engine.finishing.add(conversation.conversation_id)
    engine.defer_finish(conversation, payload)


def finish_due(engine: ChatEngine, timer: DueTimer) -> None:
    """A finish timer came due (lock held): write the chat unless that happened meanwhile
    (the timer may have outlived its reason: the chat was rated and written)."""
    conversation = engine.conversations.get(timer.key)
    if (
        conversation is not None
        and conversation.state is ConversationState.ENDED
        and not conversation.finished
        and conversation.conversation_id not in engine.finishing
        and conversation.finish_due_at is not None
        and conversation.finish_due_at <= engine.clock()
    ):
        finish_chat(engine, conversation)


def wrapup_due(engine: ChatEngine, timer: DueTimer) -> None:
    """A wrap-up's time limit came (lock held): it closes without a disposition."""
    conversation = engine.conversations.get(timer.key)
    if (
        conversation is not None
        and conversation.wrapup_until is not None
        and conversation.wrapup_until <= engine.clock()
    ):
        end_wrapup(engine, conversation, None)


def run_timeouts(engine: ChatEngine) -> int:
    """End the chats that can go no further; returns how many.

    - Waiting, nobody accepted within the widget's ticket-fallback timeout: the visitor
      gets `chat.timeout`, the agents `chat.withdrawn`.
    - Waiting, and the visitor gone (no tab for the leave grace): withdrawn from
      Incoming and written to CRM as a missed chat ("left before an agent answered").
    - Active, and the visitor gone for the widget's `inactive_close_secs`: closed and
      written, as if the visitor had ended it.
    """
    with engine.changing():
        now = engine.clock()
        timed_out, abandoned, inactive = [], [], []
        for conversation in engine.conversations.values():
            if (
                conversation.kind is not ConversationKind.VISITOR
                or not conversation.is_open
                or not conversation.widget_id
            ):
                continue
            widget = engine.directory.widget(conversation.widget_id)
            gone_for = _visitor_gone_for(engine, conversation, now)
            waiting = conversation.state is ConversationState.WAITING
            if waiting and gone_for is not None and gone_for >= engine.leave_grace:
                abandoned.append(conversation)
            elif waiting and widget is not None and widget.design.ticket_fallback.enabled:
                limit = timedelta(seconds=widget.design.ticket_fallback.accept_timeout_secs)
                if now - conversation.started_at >= limit:
                    timed_out.append(conversation)
            elif not waiting and gone_for is not None:
                secs = (
                    widget.design.inactive_close_secs
                    if widget is not None
                    else DEFAULT_INACTIVE_CLOSE_SECS
                )
                if gone_for >= timedelta(seconds=secs):
                    inactive.append(conversation)
        for conversation in timed_out:
            _time_out(engine, conversation)
        for conversation in abandoned:
            name = conversation.visitor_name or "The visitor"
            end_chat(
                engine,
                conversation,
                by="visitor",
                name=name,
                line=f"{name} left before an agent answered.",
            )
        for conversation in inactive:
            name = conversation.visitor_name or "The visitor"
            end_chat(
                engine,
                conversation,
                by="visitor",
                name=name,
                line=f"{name} left; the chat was closed after they were gone a while.",
            )
        return len(timed_out) + len(abandoned) + len(inactive)


def _visitor_gone_for(
    engine: ChatEngine, conversation: Conversation, now: datetime
) -> timedelta | None:
    """How long the chat's visitor has had no tab open, or None while they have one."""
    presence = engine.visitors.get(conversation.visitor_id or "")
    if presence is None:
        return now - max(conversation.started_at, engine.started_at)
    if presence.connected:
        return None
    return now - max(presence.last_seen, engine.started_at)


def _time_out(engine: ChatEngine, conversation: Conversation) -> None:
    """End a waiting chat nobody took (lock held); written to CRM at once (no rating)."""
    now = engine.clock()
    conversation.state = ConversationState.ENDED
    conversation.ended_at = now
    conversation.ended_by = "timeout"
    conversation.waiting_since = None
    conversation.timed_out = True
    message = append_system_line(engine, conversation, "Nobody could answer in time.")
    publish_message(engine, conversation, message)
    engine.bus.publish(
        events.event(events.CHAT_TIMEOUT, conversation_id=conversation.conversation_id),
        conversation_channels(conversation),
    )
    topics = routing_topics(engine, conversation)
    engine.bus.publish(
        events.event(events.CHAT_WITHDRAWN, conversation_id=conversation.conversation_id),
        watcher_channels(topics, agent_routes(engine, topics)),
    )
    release_visitor(engine, conversation)
    route_waiting(engine)
    finish_chat(engine, conversation)
