"""The chat engine's core: its state, locking, publishing helpers, and finishing chats.

Private: `connector.chat.actions.ChatEngine` is the face (see its module docstring for the
rules every action follows and for how a finished chat reaches Dataverse).
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any

from connector.chat import events
from connector.chat.errors import ChatEnded, ChatNotFound
from connector.chat.finish import CHAT_ACTIVITY_KIND, finished_chat_payload, transcript_messages
from connector.chat.hub import Hub, Subscriber
from connector.chat.model import (
    AgentPresence,
    Conversation,
    ConversationKind,
    ConversationState,
    Message,
    SenderKind,
    VisitorPresence,
    utc_now,
)
from connector.chat.ports import AgentLike, DirectoryLike, OutboxLike, WidgetLike
from connector.chat.routing import (
    AgentRoute,
    agent_channel,
    agents_for_chat,
    can_see,
    conversation_channels,
    watcher_channels,
    widget_available,
    widget_channel,
)
from connector.chat.state import DuplicateMessage, LiveState
from connector.chat.tokens import ChatTokens
from connector.chat.views import (
    chat_view,
    message_view,
    visitor_view,
)
from connector.crm.chat_activity import format_transcript
from connector.crm.design import DEFAULT_INACTIVE_CLOSE_SECS

__all__ = [
    "IDENTIFY_WORKERS",
    "Identifier",
    "FINISH_SWEEP_SECS",
    "LEAVE_GRACE_SECS",
    "RATING_GRACE_SECS",
    "VISIT_GAP_SECS",
    "EngineCore",
]

log = logging.getLogger(__name__)

# Two minutes is enough to click a star on the end screen, short enough that the activity
# shows up in CRM while the agent still remembers the chat.
RATING_GRACE_SECS = 120.0
# A page change closes the socket and opens another within a second or two.
LEAVE_GRACE_SECS = 15.0
# How often due finishes are written; a second's delay is invisible in CRM.
FINISH_SWEEP_SECS = 1.0
# A visitor back after half an hour of silence starts a new visit ("time on site" resets).
VISIT_GAP_SECS = 30 * 60
# Record identification runs beside the engine, never under its lock; two threads keep a
# burst of chat starts moving while one Dataverse query is slow.
IDENTIFY_WORKERS = 2

# Record identification (crm/identification.py): (context, identity email) ->
# {"contact": {"id","name"} | None, "regarding": {"table","id","name"} | None}.
Identifier = Callable[[dict[str, Any], str | None], dict[str, Any]]


def _has_context_email(context: dict[str, Any]) -> bool:
    return any(name.casefold() == "email" for name in context)


class EngineCore:
    """The engine's state and plumbing; `ChatEngine` adds the visitor and agent actions."""

    def __init__(
        self,
        state: LiveState,
        hub: Hub,
        directory: DirectoryLike,
        outbox: OutboxLike,
        tokens: ChatTokens,
        *,
        clock: Callable[[], datetime] = utc_now,
        rating_grace_secs: float = RATING_GRACE_SECS,
        leave_grace_secs: float = LEAVE_GRACE_SECS,
        identifier: Identifier | None = None,
    ) -> None:
        self.state = state
        self.hub = hub
        self.directory = directory
        self.outbox = outbox
        self.tokens = tokens
        self._clock = clock
        self._rating_grace = timedelta(seconds=rating_grace_secs)
        self._leave_grace = timedelta(seconds=leave_grace_secs)
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._sweeper: threading.Thread | None = None
        self._conversations: dict[str, Conversation] = {}
        self._visitors: dict[str, VisitorPresence] = {}
        self._availability: dict[str, bool] = {}
        self._finishing: set[str] = set()  # activity built, outbox enqueue under way
        self._deferred = threading.local()
        self.identifier = identifier
        self._identify_pool: ThreadPoolExecutor | None = None
        self._identifying: list[Future[None]] = []
        self._agents: dict[str, AgentPresence] = {
            agent_id: AgentPresence(agent_id, status=status)
            for agent_id, status in state.agent_statuses().items()
        }
        now = self._clock()
        # Visitors of chats open before a restart get the leave grace from now to reconnect.
        self._started_at = now
        for conversation in state.unfinished_conversations():
            self._conversations[conversation.conversation_id] = conversation
            if conversation.state is ConversationState.ENDED and conversation.finish_due_at is None:
                conversation.finish_due_at = now
            if conversation.visitor_id and conversation.is_open:
                presence = state.visitor(conversation.visitor_id)
                if presence is not None:
                    presence.conversation_id = conversation.conversation_id
                    self._visitors[presence.visitor_id] = presence

    # ---------------------------------------------------------------- plumbing

    @contextmanager
    def _changing(self) -> Iterator[None]:
        """Hold the engine lock for a change; send what it queued once released."""
        try:
            with self._lock:
                yield
        finally:
            self.hub.flush()
            self._run_deferred()

    def _widget_on(self, widget: WidgetLike) -> bool:
        """The widget may chat: it is enabled, chat is on for the organisation, and it
        offers at least one topic."""
        return widget.enabled and bool(widget.topic_ids) and self.directory.chat_enabled()

    def start(self) -> None:
        """Start the thread that writes due finished chats."""
        if self._sweeper is not None:
            return
        self._stop.clear()
        self._sweeper = threading.Thread(target=self._sweep, name="chat-finisher", daemon=True)
        self._sweeper.start()

    def stop(self) -> None:
        """Stop the finisher thread (due chats stay stored for the next start)."""
        self._stop.set()
        if self._sweeper is not None:
            self._sweeper.join(timeout=5)
            self._sweeper = None
        if self._identify_pool is not None:
            self._identify_pool.shutdown(wait=True, cancel_futures=True)
            self._identify_pool = None

    def _sweep(self) -> None:
        while not self._stop.wait(FINISH_SWEEP_SECS):
            try:
                self.run_due_finishes()
                self.run_timeouts()
            except Exception:
                log.exception("writing due chats failed; retrying on the next sweep")

    def do_refresh_availability(self) -> None:
        """Tell open pages whether their widget can chat now, after the configuration
        changed (the chat switch, a widget turned off): an open page hides its launcher
        within seconds, as when the last agent goes Away."""
        with self._changing():
            self._refresh_availability(None)

    def _presence(self, agent_id: str) -> AgentPresence:
        presence = self._agents.get(agent_id)
        if presence is None:
            presence = self._agents[agent_id] = AgentPresence(agent_id)
        return presence

    def _routes(self) -> list[AgentRoute]:
        routes = []
        for agent in self.directory.agents():
            presence = self._presence(agent.agent_id)
            routes.append(
                AgentRoute(agent.agent_id, agent.topic_ids, presence.status, presence.online)
            )
        return routes

    def _widget_topics(self, conversation: Conversation) -> frozenset[str]:
        """The topics that route the chat: the one the visitor chose, else the widget's."""
        if conversation.topic_id is not None:
            return frozenset({conversation.topic_id})
        widget = self.directory.widget(conversation.widget_id) if conversation.widget_id else None
        return widget.topic_ids if widget is not None else frozenset()

    def _without_requester(self, agent_ids: list[str], requester_user_id: str | None) -> list[str]:
        """The agents but the one who is the CRM user asking for help (an agent who uses
        the internal launcher must not be offered their own request)."""
        if not requester_user_id:
            return agent_ids
        wanted = requester_user_id.lower()
        kept = []
        for agent_id in agent_ids:
            profile = self.directory.agent(agent_id)
            if profile is None or profile.user_id.lower() != wanted:
                kept.append(agent_id)
        return kept

    def _may_take(self, profile: AgentLike, conversation: Conversation) -> bool:
        """The agent may be offered (and accept) this waiting chat."""
        return can_see(profile.topic_ids, self._widget_topics(conversation)) and not (
            conversation.requester_user_id
            and profile.user_id.lower() == conversation.requester_user_id.lower()
        )

    def _conversation(self, conversation_id: str) -> Conversation | None:
        conversation = self._conversations.get(conversation_id)
        if conversation is None:
            conversation = self.state.conversation(conversation_id)
        return conversation

    def _chat(self, conversation: Conversation) -> dict[str, Any]:
        widget = self.directory.widget(conversation.widget_id) if conversation.widget_id else None
        visitor = self._visitors.get(conversation.visitor_id) if conversation.visitor_id else None
        history = (
            self.state.history(conversation.visitor_id, exclude=conversation.conversation_id)
            if conversation.visitor_id
            else []
        )
        return chat_view(
            conversation,
            widget=widget,
            topics=self.directory.topics(),
            labels=self.directory.labels(),
            messages=self.state.messages(conversation.conversation_id),
            history=history,
            visitor=visitor,
        )

    def _append(
        self,
        conversation: Conversation,
        *,
        kind: SenderKind,
        sender_id: str,
        sender_name: str,
        text: str,
        client_id: str | None = None,
        changed: bool = False,
    ) -> Message:
        """Store a message (the caller publishes); `changed` stores the conversation first.

        Raises DuplicateMessage when `client_id` is already stored in the conversation.
        """
        if changed:
            self.state.save_conversation(conversation)
        message = Message(
            conversation_id=conversation.conversation_id,
            seq=conversation.last_seq + 1,
            client_id=client_id or f"sys-{uuid.uuid4().hex}",
            sender_kind=kind,
            sender_id=sender_id,
            sender_name=sender_name,
            text=text,
            sent_at=self._clock(),
        )
        self.state.add_message(conversation, message)
        conversation.last_seq = message.seq
        return message

    def _append_system(self, conversation: Conversation, text: str) -> Message:
        """Store the changed conversation and a system line about it (the caller publishes)."""
        return self._append(
            conversation,
            kind=SenderKind.SYSTEM,
            sender_id="",
            sender_name="",
            text=text,
            changed=True,
        )

    def _store_sent(
        self,
        session_subscriber: Subscriber,
        conversation: Conversation,
        *,
        kind: SenderKind,
        sender_id: str,
        sender_name: str,
        text: str,
        client_id: str,
    ) -> Message | None:
        """Store a person's message once per client_id; a resend gets the stored one back.

        Returns None when it was a resend (already answered). Raises ChatEnded when the
        chat is over and the message is new.
        """
        if not conversation.is_open:
            existing = self.state.message_by_client_id(conversation.conversation_id, client_id)
            if existing is None:
                raise ChatEnded("This chat has ended.")
            self.hub.send_to(session_subscriber, message_view(existing))
            return None
        try:
            return self._append(
                conversation,
                kind=kind,
                sender_id=sender_id,
                sender_name=sender_name,
                text=text,
                client_id=client_id,
            )
        except DuplicateMessage:
            existing = self.state.message_by_client_id(conversation.conversation_id, client_id)
            if existing is None:
                raise
            self.hub.send_to(session_subscriber, message_view(existing))
            return None

    def _publish_message(self, conversation: Conversation, message: Message) -> None:
        self.hub.publish(message_view(message), conversation_channels(conversation))

    def _visitor_agent(self, conversation: Conversation) -> dict[str, Any] | None:
        """The agent as the visitor sees them: name, and image when the design shows it."""
        if conversation.owner_agent_id is None:
            return None
        profile = self.directory.agent(conversation.owner_agent_id)
        if profile is None:
            return None
        widget = self.directory.widget(conversation.widget_id) if conversation.widget_id else None
        show_image = widget is None or widget.design.show_agent_image
        return {"name": profile.name, "image": profile.image if show_image else None}

    def _refresh_availability(self, topic_ids: frozenset[str] | None) -> None:
        """Tell visitors of every widget whose availability changed.

        Only widgets sharing one of `topic_ids` (the topics of the agent who came, went or
        changed status) can have changed, so only those are recomputed; None: all.
        """
        routes = self._routes()
        widget_ids = {p.widget_id for p in self._visitors.values() if p.connected}
        for widget_id in widget_ids | set(self._availability):
            widget = self.directory.widget(widget_id)
            if (
                widget is not None
                and topic_ids is not None
                and not can_see(topic_ids, widget.topic_ids)
            ):
                continue
            available = widget is not None and widget_available(
                self._widget_on(widget), widget.topic_ids, routes
            )
            if self._availability.get(widget_id) != available:
                self._availability[widget_id] = available
                self.hub.publish(
                    events.event(events.AVAILABILITY, available=available),
                    {widget_channel(widget_id)},
                )

    def _publish_visitor(self, presence: VisitorPresence) -> None:
        widget = self.directory.widget(presence.widget_id)
        if widget is None:
            return
        self.hub.publish(
            events.event(
                events.VISITOR_UPDATED, visitor=visitor_view(presence, widget_name=widget.name)
            ),
            watcher_channels(widget.topic_ids, self._routes()),
        )

    def _publish_chat_updated(self, conversation: Conversation, *, skip: set[str]) -> None:
        channels = conversation_channels(conversation, visitor=False) - skip
        if channels:
            self.hub.publish(
                events.event(events.CHAT_UPDATED, chat=self._chat(conversation)), channels
            )

    # ---------------------------------------------------------------- widget (HTTP)

    def widget_status(self, widget_id: str) -> tuple[WidgetLike, bool] | None:
        """The widget and whether a chat can start now, or None when there is no widget."""
        widget = self.directory.widget(widget_id)
        if widget is None:
            return None
        if not self._widget_on(widget):
            return widget, False
        with self._lock:
            routes = self._routes()
        return widget, widget_available(self._widget_on(widget), widget.topic_ids, routes)

    # ---------------------------------------------------------------- CRM (HTTP)

    def _agent_conversation(self, agent_id: str, conversation_id: str) -> Conversation:
        """An open or ended chat the agent takes part in; ChatNotFound otherwise."""
        conversation = self._conversation(conversation_id)
        if conversation is None or not conversation.has_agent(agent_id):
            raise ChatNotFound("There is no such chat.")
        return conversation

    def access_agent_chat(self, agent_id: str, conversation_id: str) -> Conversation:
        """A copy-safe view of a chat the agent takes part in; ChatNotFound otherwise."""
        with self._lock:
            return self._agent_conversation(agent_id, conversation_id)

    def access_earlier_chat(
        self, agent_id: str, conversation_id: str, earlier_id: str
    ) -> list[dict[str, Any]]:
        """The messages of one of the visitor's earlier chats, for an agent in a chat with
        that visitor now (the History card). ChatNotFound unless `earlier_id` is in the
        chat's history."""
        with self._lock:
            conversation = self._agent_conversation(agent_id, conversation_id)
            if not conversation.visitor_id:
                raise ChatNotFound("There is no such chat.")
            history = self.state.history(conversation.visitor_id, exclude=conversation_id)
            if earlier_id not in {entry.conversation_id for entry in history}:
                raise ChatNotFound("There is no such chat.")
            messages = self.state.messages(earlier_id)
        return [message_view(message) for message in messages]

    def transcript_text(self, conversation_id: str, *, limit: int) -> str:
        """The chat's readable transcript ("[10:02:11] Ann: hello" lines, system lines
        named "System"), cut at a message boundary to fit `limit` characters."""
        conversation = self._conversation(conversation_id)
        messages = transcript_messages(self.state.messages(conversation_id))
        started = conversation.started_at if conversation is not None else None
        return format_transcript(messages, started_at=started, limit=limit)

    def do_set_regarding(
        self,
        agent_id: str,
        conversation_id: str,
        regarding: dict[str, str],
        *,
        contact: dict[str, str] | None = None,
    ) -> None:
        """Link the chat to a CRM record, and to `contact` (`{"id","name"}`) when the agent
        made or chose the visitor's contact; the chat's agents get `chat.updated`."""
        with self._changing():
            conversation = self._agent_conversation(agent_id, conversation_id)
            if conversation.finished:
                raise ChatEnded("This chat is already written to CRM.")
            conversation.regarding = dict(regarding)
            if contact is not None:
                conversation.contact = dict(contact)
            self.state.save_conversation(conversation)
            self._publish_chat_updated(conversation, skip=set())

    # ---------------------------------------------------------------- ending

    def _end(
        self, conversation: Conversation, *, by: str, name: str, line: str | None = None
    ) -> None:
        """End an open conversation (caller holds the lock); `line` is the system line,
        "<name> ended the chat." unless given."""
        was_waiting = conversation.state is ConversationState.WAITING
        now = self._clock()
        conversation.state = ConversationState.ENDED
        conversation.ended_at = now
        conversation.ended_by = by
        conversation.waiting_since = None
        if conversation.kind is ConversationKind.VISITOR:
            conversation.finish_due_at = now + self._rating_grace
        message = self._append_system(conversation, line or f"{name} ended the chat.")
        self._publish_message(conversation, message)
        self.hub.publish(
            events.event(events.CHAT_ENDED, conversation_id=conversation.conversation_id, by=by),
            conversation_channels(conversation),
        )
        if conversation.kind is not ConversationKind.VISITOR:
            self._conversations.pop(conversation.conversation_id, None)
            return
        if was_waiting:
            self.hub.publish(
                events.event(events.CHAT_WITHDRAWN, conversation_id=conversation.conversation_id),
                watcher_channels(self._widget_topics(conversation), self._routes()),
            )
        presence = self._release_visitor(conversation)
        widget = self.directory.widget(conversation.widget_id) if conversation.widget_id else None
        wants_rating = widget is not None and widget.design.rating
        if (
            conversation.rating is not None
            or not wants_rating
            or not (presence is not None and presence.connected)
        ):
            self._finish(conversation)

    def _release_visitor(self, conversation: Conversation) -> VisitorPresence | None:
        """Free the chat's visitor for a new chat (lock held); returns their presence.

        A visitor with no tab open any more leaves the Visitors list now that their chat
        is over (they stayed on it only for the chat's sake).
        """
        presence = self._visitors.get(conversation.visitor_id or "")
        if presence is not None and presence.conversation_id == conversation.conversation_id:
            presence.conversation_id = None
            self.state.save_visitor(presence)
            if presence.connected:
                self._publish_visitor(presence)
            else:
                self._visitor_left(presence)
        return presence

    def _visitor_left(self, presence: VisitorPresence) -> None:
        """Take a departed visitor off every Visitors list (lock held)."""
        widget = self.directory.widget(presence.widget_id)
        if widget is not None:
            self.hub.publish(
                events.event(events.VISITOR_LEFT, visitor_id=presence.visitor_id),
                watcher_channels(widget.topic_ids, self._routes()),
            )
        self._visitors.pop(presence.visitor_id, None)

    def _finish(self, conversation: Conversation) -> None:
        """Build the chat activity now; queue it once the lock is released (lock held).

        The outbox commits with a full fsync; doing that outside the engine lock keeps it
        off every other chat's relay path. Until then the chat is `_finishing`: no rating
        and no second finish.
        """
        if conversation.conversation_id in self._finishing:
            return
        payload = finished_chat_payload(
            conversation, self.state.messages(conversation.conversation_id), self.directory
        )
        self._finishing.add(conversation.conversation_id)
        pending: list[tuple[Conversation, dict[str, Any]]] | None = getattr(
            self._deferred, "finishes", None
        )
        if pending is None:
            pending = self._deferred.finishes = []
        pending.append((conversation, payload))

    def _run_deferred(self) -> None:
        """Queue this thread's finished chats in the outbox, then mark them finished."""
        pending: list[tuple[Conversation, dict[str, Any]]] | None = getattr(
            self._deferred, "finishes", None
        )
        if not pending:
            return
        self._deferred.finishes = []
        for conversation, payload in pending:
            try:
                # Enqueued before it is marked finished: a crash in between re-enqueues it
                # after the restart, and the outbox ignores the repeated key.
                self.outbox.enqueue(CHAT_ACTIVITY_KIND, conversation.conversation_id, payload)
            except Exception:
                log.exception("queueing chat %s failed", conversation.conversation_id)
                with self._lock:
                    self._finishing.discard(conversation.conversation_id)
                continue
            with self._lock:
                conversation.finished = True
                conversation.finish_due_at = None
                self.state.save_conversation(conversation)
                self._conversations.pop(conversation.conversation_id, None)
                self._finishing.discard(conversation.conversation_id)

    def run_due_finishes(self) -> int:
        """Write every ended chat whose rating window has closed; returns how many."""
        with self._changing():
            now = self._clock()
            due = [
                c
                for c in self._conversations.values()
                if c.state is ConversationState.ENDED
                and not c.finished
                and c.conversation_id not in self._finishing
                and c.finish_due_at is not None
                and c.finish_due_at <= now
            ]
            for conversation in due:
                self._finish(conversation)
            return len(due)

    # ---------------------------------------------------------------- nobody accepts

    def run_timeouts(self) -> int:
        """End the chats that can go no further; returns how many.

        - Waiting, nobody accepted within the widget's ticket-fallback timeout: the visitor
          gets `chat.timeout`, the agents `chat.withdrawn`.
        - Waiting, and the visitor gone (no tab for the leave grace): withdrawn from
          Incoming and written to CRM as a missed chat ("left before an agent answered").
        - Active, and the visitor gone for the widget's `inactive_close_secs`: closed and
          written, as if the visitor had ended it.
        """
        with self._changing():
            now = self._clock()
            timed_out, abandoned, inactive = [], [], []
            for conversation in self._conversations.values():
                if (
                    conversation.kind is not ConversationKind.VISITOR
                    or not conversation.is_open
                    or not conversation.widget_id
                ):
                    continue
                widget = self.directory.widget(conversation.widget_id)
                gone_for = self._visitor_gone_for(conversation, now)
                waiting = conversation.state is ConversationState.WAITING
                if waiting and gone_for is not None and gone_for >= self._leave_grace:
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
                self._time_out(conversation)
            for conversation in abandoned:
                name = conversation.visitor_name or "The visitor"
                self._end(
                    conversation,
                    by="visitor",
                    name=name,
                    line=f"{name} left before an agent answered.",
                )
            for conversation in inactive:
                name = conversation.visitor_name or "The visitor"
                self._end(
                    conversation,
                    by="visitor",
                    name=name,
                    line=f"{name} left; the chat was closed after they were gone a while.",
                )
            return len(timed_out) + len(abandoned) + len(inactive)

    def _visitor_gone_for(self, conversation: Conversation, now: datetime) -> timedelta | None:
        """How long the chat's visitor has had no tab open, or None while they have one."""
        presence = self._visitors.get(conversation.visitor_id or "")
        if presence is None:
            return now - max(conversation.started_at, self._started_at)
        if presence.connected:
            return None
        return now - max(presence.last_seen, self._started_at)

    def _time_out(self, conversation: Conversation) -> None:
        """End a waiting chat nobody took (lock held); written to CRM at once (no rating)."""
        now = self._clock()
        conversation.state = ConversationState.ENDED
        conversation.ended_at = now
        conversation.ended_by = "timeout"
        conversation.waiting_since = None
        conversation.timed_out = True
        message = self._append_system(conversation, "Nobody could answer in time.")
        self._publish_message(conversation, message)
        self.hub.publish(
            events.event(events.CHAT_TIMEOUT, conversation_id=conversation.conversation_id),
            conversation_channels(conversation),
        )
        self.hub.publish(
            events.event(events.CHAT_WITHDRAWN, conversation_id=conversation.conversation_id),
            watcher_channels(self._widget_topics(conversation), self._routes()),
        )
        self._release_visitor(conversation)
        self._finish(conversation)

    # ---------------------------------------------------------------- identification

    def _identify_later(self, conversation: Conversation, identity_email: str | None) -> None:
        """Look the chat's contact up beside the engine (never under its lock)."""
        if self.identifier is None or conversation.regarding is not None:
            return
        if self._identify_pool is None:
            self._identify_pool = ThreadPoolExecutor(
                max_workers=IDENTIFY_WORKERS, thread_name_prefix="chat-identify"
            )
        identifier = self.identifier
        context = dict(conversation.context)
        # The pre-chat email finds a returning visitor's contact (e.g. the one an agent made
        # in their first chat) when neither the page nor a sign-in gave one.
        field_email = conversation.visitor_fields.get("email", "").strip()
        if field_email and not identity_email and not _has_context_email(context):
            context["Email"] = field_email
        conversation_id = conversation.conversation_id

        def run() -> None:
            try:
                found = identifier(context, identity_email)
            except Exception:
                log.warning("identifying chat %s failed", conversation_id, exc_info=True)
                return
            self._apply_identification(conversation_id, found)

        self._identifying = [f for f in self._identifying if not f.done()]
        self._identifying.append(self._identify_pool.submit(run))

    def wait_identifications(self, timeout_secs: float = 10.0) -> None:
        """Wait until the identifications under way are done (tests, shutdown)."""
        for future in list(self._identifying):
            future.result(timeout=timeout_secs)

    def _apply_identification(self, conversation_id: str, found: dict[str, Any]) -> None:
        contact, regarding = found.get("contact"), found.get("regarding")
        if contact is None:
            return
        with self._changing():
            conversation = self._conversations.get(conversation_id)
            if conversation is None or conversation.finished:
                return
            conversation.contact = dict(contact)
            if conversation.regarding is None and regarding is not None:
                conversation.regarding = dict(regarding)
            self.state.save_conversation(conversation)
            self._publish_identified(conversation)

    def _publish_identified(self, conversation: Conversation) -> None:
        """`chat.updated` to the chat's agents, or, while it waits, to those offered it."""
        if conversation.state is ConversationState.WAITING:
            offered = agents_for_chat(self._widget_topics(conversation), self._routes())
            channels = {
                agent_channel(agent_id)
                for agent_id in self._without_requester(offered, conversation.requester_user_id)
            }
        else:
            channels = conversation_channels(conversation, visitor=False)
        if channels:
            self.hub.publish(
                events.event(events.CHAT_UPDATED, chat=self._chat(conversation)), channels
            )
