"""The chat engine: the live chat's state, its lock, and the thread that finishes chats.

`ChatEngine` holds data and plumbing only; what people do lives in `connector.chat.actions`
as `do_*` functions taking the engine first (`visitors.do_visitor_send(engine, ...)`), so a
visitor's message can be followed from the socket (`connector.web.sockets`) through
`actions.visitors` and `actions.conversations` to the activity (`actions.finishing`, then
the outbox) without a base class in between. See `connector.chat.actions` for the rules
every action follows.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any

from connector.chat.actions.conversations import do_refresh_availability
from connector.chat.actions.finishing import run_due_finishes, run_timeouts
from connector.chat.finish import CHAT_ACTIVITY_KIND
from connector.chat.hub import Hub
from connector.chat.model import (
    AgentPresence,
    Conversation,
    ConversationState,
    VisitorPresence,
    utc_now,
)
from connector.chat.ports import DirectoryLike, OutboxLike
from connector.chat.state import LiveState
from connector.chat.tokens import ChatTokens

__all__ = [
    "FINISH_SWEEP_SECS",
    "LEAVE_GRACE_SECS",
    "RATING_GRACE_SECS",
    "VISIT_GAP_SECS",
    "ChatEngine",
    "Identifier",
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

# Record identification (crm/identification.py): (context, identity email) ->
# {"contact": {"id","name"} | None, "regarding": {"table","id","name"} | None}.
Identifier = Callable[[dict[str, Any], str | None], dict[str, Any]]


class ChatEngine:
    """The live chat's state: presence, conversations, availability, and its collaborators.

    `ChatEngine(state, hub, directory, outbox, tokens, *, clock, rating_grace_secs,
    leave_grace_secs, identifier)`; tests drive it with fakes. Actions change it only
    inside `changing()`.
    """

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
        self.clock = clock
        self.rating_grace = timedelta(seconds=rating_grace_secs)
        self.leave_grace = timedelta(seconds=leave_grace_secs)
        self.lock = threading.RLock()
        self._stop = threading.Event()
        self._sweeper: threading.Thread | None = None
        self.conversations: dict[str, Conversation] = {}
        self.visitors: dict[str, VisitorPresence] = {}
        self.availability: dict[str, bool] = {}
        self.finishing: set[str] = set()  # activity built, outbox enqueue under way
        self._deferred = threading.local()
        self.identifier = identifier
        self.identify_pool: ThreadPoolExecutor | None = None
        self.identifying: list[Future[None]] = []
        self.agents: dict[str, AgentPresence] = {
            agent_id: AgentPresence(agent_id, status=status)
            for agent_id, status in state.agent_statuses().items()
        }
        now = self.clock()
        # Visitors of chats open before a restart get the leave grace from now to reconnect.
        self.started_at = now
        for conversation in state.unfinished_conversations():
            self.conversations[conversation.conversation_id] = conversation
            if conversation.state is ConversationState.ENDED and conversation.finish_due_at is None:
                conversation.finish_due_at = now
            if conversation.visitor_id and conversation.is_open:
                presence = state.visitor(conversation.visitor_id)
                if presence is not None:
                    presence.conversation_id = conversation.conversation_id
                    self.visitors[presence.visitor_id] = presence

    @contextmanager
    def changing(self) -> Iterator[None]:
        """Hold the engine lock for a change; send what it queued once released."""
        try:
            with self.lock:
                yield
        finally:
            self.hub.flush()
            self._run_deferred()

    def defer_finish(self, conversation: Conversation, payload: dict[str, Any]) -> None:
        """Queue a built activity for the outbox once this thread leaves `changing()`."""
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
                with self.lock:
                    self.finishing.discard(conversation.conversation_id)
                continue
            with self.lock:
                conversation.finished = True
                conversation.finish_due_at = None
                self.state.save_conversation(conversation)
                self.conversations.pop(conversation.conversation_id, None)
                self.finishing.discard(conversation.conversation_id)

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
        if self.identify_pool is not None:
            self.identify_pool.shutdown(wait=True, cancel_futures=True)
            self.identify_pool = None

    def _sweep(self) -> None:
        while not self._stop.wait(FINISH_SWEEP_SECS):
            try:
                run_due_finishes(self)
                run_timeouts(self)
                do_refresh_availability(self)  # operating hours open and close with time
            except Exception:
                log.exception("writing due chats failed; retrying on the next sweep")
