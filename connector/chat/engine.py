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
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from datetime import datetime, timedelta
from typing import Any

import redis

from connector.chat.actions.agents import do_flush_presence
from connector.chat.actions.conversations import do_refresh_availability, note_message
from connector.chat.actions.due import rearm_timers, run_due_timers
from connector.chat.actions.finishing import FINISH_TIMER, run_timeouts
from connector.chat.actions.queues import run_ring_timeouts
from connector.chat.actions.supervision import do_push_board
from connector.chat.bus import EventBus, LocalBus, attach_hub
from connector.chat.errors import ChatUnavailable
from connector.chat.events import MESSAGE_CREATED
from connector.chat.finish import CHAT_ACTIVITY_KIND
from connector.chat.hub import Hub, Queued
from connector.chat.leases import LeaseBusy
from connector.chat.model import (
    AgentPresence,
    Conversation,
    ConversationState,
    SenderKind,
    VisitorPresence,
    utc_now,
)
from connector.chat.org_sync import OrgSync
from connector.chat.ports import DirectoryLike, OutboxLike
from connector.chat.roster import Roster
from connector.chat.state import LiveState
from connector.chat.timers import LocalTimers, Timers
from connector.chat.tokens import ChatTokens
from connector.chat.workload import Workload

__all__ = [
    "FINISH_SWEEP_SECS",
    "LEAVE_GRACE_SECS",
    "PRESENCE_TICK_SECS",
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
# Agents' presence changes are sent together this often (actions/agents.py): a fifth of a
# second is below what a person notices on a status dot, and a burst of sign-ins becomes
# one frame per console.
PRESENCE_TICK_SECS = 0.2
# Relayed messages kept for the working copy between two changes (a change runs at least
# every FINISH_SWEEP_SECS): far above a second of any org's messages.
HEARD_MAX = 100_000
# A visitor back after half an hour of silence starts a new visit ("time on site" resets).
VISIT_GAP_SECS = 30 * 60

# Record identification (crm/identification.py): (context, identity email) ->
# {"contact": {"id","name"} | None, "regarding": {"table","id","name"} | None}.
Identifier = Callable[[dict[str, Any], str | None], dict[str, Any]]


def agent_presence_of(agents: dict[str, AgentPresence], agent_id: str) -> AgentPresence:
    """The agent's presence record, made when missing."""
    agent = agents.get(agent_id)
    if agent is None:
        agent = agents[agent_id] = AgentPresence(agent_id)
    return agent


class ChatEngine:
    """The live chat's state: presence, conversations, availability, and its collaborators.

    `ChatEngine(state, hub, directory, outbox, tokens, *, bus, timers, clock,
    rating_grace_secs, leave_grace_secs, identifier)`; tests drive it with fakes. Actions
    change it only inside `changing()` and publish events through `bus` (each process's
    `hub` hears the bus); the due finishes are `timers`. Without `bus` and `timers` (the
    single-process default of `connector.chat.live.open_live`): a `LocalBus` and
    `LocalTimers` on the engine's clock.

    With `org` (several processes on one Redis, connector/chat/org_sync.py) every change
    holds the org lease and first reloads the working copy when another process changed
    something; `process_id` names this process in the shared presence counts.
    """

    def __init__(
        self,
        state: LiveState,
        hub: Hub,
        directory: DirectoryLike,
        outbox: OutboxLike,
        tokens: ChatTokens,
        *,
        bus: EventBus | None = None,
        timers: Timers | None = None,
        org: OrgSync | None = None,
        process_id: str = "local",
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
        self.bus: EventBus = bus if bus is not None else LocalBus()
        attach_hub(self.bus, hub)
        self.timers: Timers = (
            timers if timers is not None else LocalTimers(clock=lambda: self.clock().timestamp())
        )
        self.org = org
        self.process_id = process_id
        self._depth = 0  # changing() sections this thread is in (read under the lock)
        self._seen_version = -1  # the org version the working copy reflects
        self.rating_grace = timedelta(seconds=rating_grace_secs)
        self.leave_grace = timedelta(seconds=leave_grace_secs)
        self.lock = threading.RLock()
        self._stop = threading.Event()
        self._sweeper: threading.Thread | None = None
        self.conversations: dict[str, Conversation] = {}
        self.visitors: dict[str, VisitorPresence] = {}
        self.availability: dict[str, bool] = {}
        self.finishing: set[str] = set()  # activity built, outbox enqueue under way
        # Agents whose row the next presence tick sends (ordered, under the lock), the
        # tick, and when the last frame went (time.monotonic(); actions/agents.py).
        self.changed_agents: dict[str, None] = {}
        self.presence_tick = PRESENCE_TICK_SECS
        self.presence_sent_at = 0.0
        self._presence_ticker: threading.Thread | None = None
        self._deferred = threading.local()
        # Per thread: how deep in changing() it is, and the relayed messages whose commit
        # it waits for once out (`after_change`).
        self._relaying = threading.local()
        # On Redis, messages relayed without the org lease (any process's), as heard on the
        # bus: the working copy notes them at the next change (`hear`).
        self._heard: deque[tuple[str, int, SenderKind, datetime]] = deque(maxlen=HEARD_MAX)
        if org is not None:
            self.bus.listen(self.hear)
        self.identifier = identifier
        self.identify_pool: ThreadPoolExecutor | None = None
        self.identifying: list[Future[None]] = []
        self.agents: dict[str, AgentPresence] = {
            agent_id: AgentPresence(agent_id, status=status)
            for agent_id, status in state.agent_statuses().items()
        }
        for agent_id, since in state.agent_idle_times().items():
            agent_presence_of(self.agents, agent_id).idle_since = since
        # Online agents by topic (roster.py): nobody is online before a console connects.
        self.roster = Roster()
        # What each waiting visitor was last told by `chat.queued` (actions/queues.py):
        # only a change is sent. Per process: on Redis another process may repeat a value.
        self.queue_told: dict[str, tuple[int, int | None]] = {}
        # Recent handling times (accepted to ended, seconds) per topic, newest last: the
        # queue's estimated wait (actions/queues.py). Per process, since its start.
        self.handle_secs: dict[str, deque[float]] = {}
        # The board this process's supervisors were last sent, as rows, and the lock of
        # building and sending it (actions/supervision.py); None while none is connected.
        self.board_rows: dict[str, dict[str, dict[str, Any]]] | None = None
        self.board_lock = threading.Lock()
        now = self.clock()
        # Visitors of chats open before a restart get the leave grace from now to reconnect.
        self.started_at = now
        for conversation in state.unfinished_conversations():
            self.conversations[conversation.conversation_id] = conversation
            if conversation.state is ConversationState.ENDED:
                # Re-armed from the stored due time: a restart in the grace period loses
                # nothing (a due time already past fires on the first sweep).
                self.schedule_finish(conversation, conversation.finish_due_at or now)
            rearm_timers(self, conversation)  # wrap-up and postpone (actions/due.py)
            if conversation.visitor_id and conversation.is_open:
                presence = state.visitor(conversation.visitor_id)
                if presence is not None:
                    presence.conversation_id = conversation.conversation_id
                    self.visitors[presence.visitor_id] = presence
        # Which chats wait and which each agent is in (workload.py).
        self.workload = Workload()
        self.workload.rebuild(self.conversations.values())
        self.roster.file_visitors(self.visitors.values(), directory)

    def schedule_finish(self, conversation: Conversation, due_at: datetime) -> None:
        """Write the ended chat to CRM at `due_at` (moves an earlier schedule; lock held).

        The due time is stored with the conversation (the truth a restart re-arms from)
        and set as a timer, which the sweep claims (`due.run_due_timers`).
        """
        conversation.finish_due_at = due_at
        self.timers.set(FINISH_TIMER, conversation.conversation_id, due_at)

    @contextmanager
    def changing(self) -> Iterator[None]:
        """Hold the engine lock for a change (and on Redis the org lease, the working copy
        reloaded first when stale); send what it queued once released.

        Raises ChatUnavailable when the org lease stays busy or Redis is unreachable:
        nothing was changed, the client may try again.
        """
        local = self._relaying
        local.depth = getattr(local, "depth", 0) + 1
        try:
            with self.lock:
                if self.org is None or self._depth > 0:
                    self._depth += 1
                    try:
                        yield
                    finally:
                        self._depth -= 1
                else:
                    with self._org_change():
                        yield
        finally:
            local.depth -= 1
            try:
                if local.depth == 0:
                    self._send_relayed()
            finally:
                self.hub.flush()
                self._run_deferred()

    def after_change(self, relayed: Future[Queued]) -> None:
        """Wait for `relayed` (a message's commit, `append_message_later`) when this thread
        leaves `changing()`, off the lock, then send the frames its publish queued."""
        pending: list[Future[Queued]] | None = getattr(self._relaying, "pending", None)
        if pending is None:
            pending = self._relaying.pending = []
        pending.append(relayed)

    def _send_relayed(self) -> None:
        pending: list[Future[Queued]] | None = getattr(self._relaying, "pending", None)
        if not pending:
            return
        self._relaying.pending = []
        failure: BaseException | None = None
        for relayed in pending:
            try:
                self.hub.send_queued(relayed.result())
            except Exception as error:  # noqa: BLE001 - reported once all are sent
                failure = failure or error
        if failure is not None:
            # Nothing of the failed batch is stored or announced: the sender may resend.
            log.warning("a message could not be stored: %s", failure)
            raise ChatUnavailable("Your message could not be saved; please try again.") from failure

    @contextmanager
    def reading(self) -> Iterator[None]:
        """Hold the engine lock to read the working copy (on Redis: as of the last change
        anywhere, under the org lease)."""
        with self.lock:
            if self.org is None or self._depth > 0:
                yield
            else:
                with self._org_change():
                    yield

    @contextmanager
    def _org_change(self) -> Iterator[None]:
        """The outermost change on Redis: lease, reload when stale, bump after writes."""
        assert self.org is not None
        org = self.org
        self._depth += 1
        try:
            with ExitStack() as stack:
                try:
                    stack.enter_context(org.holding())
                    version = org.version()
                    if version != self._seen_version:
                        members = org.changes_since(self._seen_version, version)
                        if members is None:
                            self.sync_from_state()
                        else:
                            self.sync_members(members)
                    self._note_heard()
                except (LeaseBusy, redis.RedisError) as error:
                    raise ChatUnavailable("The chat service is busy; try again.") from error
                writes = org.writes()
                org.state.take_touched()  # only this change's writes go in its log entry
                try:
                    yield
                except redis.RedisError as error:
                    # Redis went away mid-change: the client hears `unavailable` and may
                    # resend (a message's client_id makes the resend idempotent).
                    self._seen_version = -1
                    raise ChatUnavailable("The chat service is busy; try again.") from error
                try:
                    if org.writes() == writes:
                        self._seen_version = version
                    else:
                        bumped = org.bump(org.state.take_touched())
                        # Another bump between (a dead process, without the lease): read
                        # the log from `version` next time, this change's own ids included.
                        self._seen_version = bumped if bumped == version + 1 else version
                except redis.RedisError:
                    self._seen_version = -1  # reload at the next change, whatever happened
        finally:
            self._depth -= 1

    def hear(self, event: dict[str, Any], channels: frozenset[str]) -> None:
        """A bus event (the bus's thread): keep a relayed message for `_note_heard`."""
        if event.get("type") != MESSAGE_CREATED:
            return
        try:
            heard = (
                str(event["conversation_id"]),
                int(event["seq"]),
                SenderKind(event["sender"]["kind"]),
                datetime.fromisoformat(str(event["sent_at"])),
            )
        except (KeyError, TypeError, ValueError):
            return
        self._heard.append(heard)  # deque appends and pops are thread-safe

    def _note_heard(self) -> None:
        """Note the messages heard on the bus in the working copy (org lease held): its
        `last_seq`, last visitor message and waiting time, as a reload would derive them."""
        while self._heard:
            conversation_id, seq, kind, sent_at = self._heard.popleft()
            conversation = self.conversations.get(conversation_id)
            if conversation is not None:
                note_message(conversation, seq, kind, sent_at)

    def sync_from_state(self) -> None:
        """Rebuild the working copy from the shared state (org lease held): the open and
        unfinished chats, agent statuses, and who is connected over every live process."""
        assert self.org is not None
        counts = self.org.state.presence_counts()
        conversations = {c.conversation_id: c for c in self.state.unfinished_conversations()}
        self.conversations.clear()
        self.conversations.update(conversations)
        self.workload.rebuild(conversations.values())
        statuses = self.state.agent_statuses()
        idle = self.state.agent_idle_times()
        for agent_id in set(statuses) | {m[6:] for m in counts if m.startswith("agent:")}:
            agent = agent_presence_of(self.agents, agent_id)
            agent.status = statuses.get(agent_id, agent.status)
        for agent_id, since in idle.items():
            agent_presence_of(self.agents, agent_id).idle_since = since
        for agent_id, agent in self.agents.items():
            agent.connections = counts.get(f"agent:{agent_id}", 0)
        wanted = {m[8:] for m in counts if m.startswith("visitor:")} | {
            c.visitor_id for c in conversations.values() if c.visitor_id and c.is_open
        }
        visitors: dict[str, VisitorPresence] = {}
        for visitor_id in wanted:
            presence = self.state.visitor(visitor_id)
            if presence is None:
                continue
            presence.connections = counts.get(f"visitor:{visitor_id}", 0)
            visitors[visitor_id] = presence
        self.visitors.clear()
        self.visitors.update(visitors)
        self.roster.rebuild(self.agents, self.directory)
        self.roster.file_visitors(visitors.values(), self.directory)
        for presence in visitors.values():
            self._file_widget(presence)

    def sync_members(self, members: set[str]) -> None:
        """Reload only what other processes' changes wrote (org lease held): `members`
        are "conversation:<id>", "visitor:<id>" and "agent:<id>" (org_sync.py)."""
        assert self.org is not None
        shared = self.org.state
        visitor_ids: set[str] = set()
        for member in sorted(members):
            kind, _, member_id = member.partition(":")
            if kind == "conversation":
                conversation = shared.unfinished_conversation(member_id)
                if conversation is None:
                    stale = self.conversations.pop(member_id, None)
                    if stale is not None and stale.visitor_id:
                        visitor_ids.add(stale.visitor_id)
                    continue
                self.conversations[member_id] = conversation
                self.workload.note(conversation)
                if conversation.visitor_id:
                    visitor_ids.add(conversation.visitor_id)
            elif kind == "visitor":
                visitor_ids.add(member_id)
            elif kind == "agent":
                agent = agent_presence_of(self.agents, member_id)
                agent.status = shared.agent_status(member_id) or agent.status
                agent.idle_since = shared.agent_idle(member_id) or agent.idle_since
                agent.connections = shared.presence_count(member)
                self.roster.note_presence(member_id, agent, self.directory)
        for visitor_id in visitor_ids:
            self._sync_visitor(visitor_id)

    def _sync_visitor(self, visitor_id: str) -> None:
        """Keep the visitor when connected somewhere or in an open chat (as
        `sync_from_state` chooses them), as stored now."""
        assert self.org is not None
        connections = self.org.state.presence_count(f"visitor:{visitor_id}")
        presence = self.state.visitor(visitor_id)
        # The visitor record names its open chat (visitors.py sets it, finishing clears it).
        current = (
            self.conversations.get(presence.conversation_id)
            if presence is not None and presence.conversation_id
            else None
        )
        chatting = current is not None and current.is_open and current.visitor_id == visitor_id
        if presence is None or (connections == 0 and not chatting):
            self.visitors.pop(visitor_id, None)
            return
        presence.connections = connections
        self.visitors[visitor_id] = presence
        self._file_widget(presence)

    def _file_widget(self, presence: VisitorPresence) -> None:
        """A visitor reloaded from the shared state: file them, and when connected their
        widget as one to tell (roster.py)."""
        widget = self.directory.widget(presence.widget_id)
        if widget is None:
            return
        self.roster.note_visitor(presence.visitor_id, widget.topic_ids)
        if presence.connected:
            self.roster.note_widget(presence.widget_id, widget.topic_ids)

    def process_died(self, process_id: str) -> None:
        """Another process died (its sockets no longer count): every working copy reloads
        at its next change (called by one survivor's heartbeat)."""
        log.warning("service process %s stopped beating; its sockets are gone", process_id)
        if self.org is not None:
            self.org.bump()

    def count_connection(self, member: str, connections: int, delta: int) -> int:
        """A socket of `member` ("visitor:<id>", "agent:<id>") opened (+1) or closed (-1)
        here: its number of sockets over every process, given this copy's `connections`."""
        if self.org is None:
            return max(0, connections + delta)
        return max(0, self.org.state.presence_change(self.process_id, member, delta))

    def announce_availability(self, widget_id: str, available: bool) -> bool:
        """Record what the widget's visitors are told; True when this is a change to
        announce (on Redis for exactly one process of those that noticed it)."""
        changed = self.availability.get(widget_id) != available
        self.availability[widget_id] = available
        if self.org is None:
            return changed
        return self.org.state.swap_availability(widget_id, available)

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
                with self.changing():
                    self.finishing.discard(conversation.conversation_id)
                    # Its timer was done when the sweep took it: the next sweep retries.
                    self.schedule_finish(conversation, self.clock())
                continue
            with self.changing():
                # On Redis the working copy may have been reloaded meanwhile: mark the
                # conversation as it is now.
                current = self.conversations.get(conversation.conversation_id, conversation)
                current.finished = True
                current.finish_due_at = None
                self.timers.cancel(FINISH_TIMER, current.conversation_id)
                self.state.save_conversation(current)
                self.conversations.pop(current.conversation_id, None)
                self.finishing.discard(current.conversation_id)

    def start(self) -> None:
        """Start the thread that writes due finished chats."""
        if self._sweeper is not None:
            return
        self._stop.clear()
        self._sweeper = threading.Thread(target=self._sweep, name="chat-finisher", daemon=True)
        self._sweeper.start()
        self._presence_ticker = threading.Thread(
            target=self._tick_presence, name="chat-presence", daemon=True
        )
        self._presence_ticker.start()

    def stop(self) -> None:
        """Stop the finisher thread (due chats stay stored for the next start)."""
        self._stop.set()
        if self._sweeper is not None:
            self._sweeper.join(timeout=5)
            self._sweeper = None
        if self._presence_ticker is not None:
            self._presence_ticker.join(timeout=5)
            self._presence_ticker = None
        if self.identify_pool is not None:
            self.identify_pool.shutdown(wait=True, cancel_futures=True)
            self.identify_pool = None

    def _tick_presence(self) -> None:
        while not self._stop.wait(PRESENCE_TICK_SECS):
            try:
                do_flush_presence(self)
            except ChatUnavailable:
                # Redis is away or the org lease busy: the rows wait for the next tick.
                log.warning("the chat state is unavailable; sending presence next tick")
            except Exception:
                log.exception("sending presence failed; retrying on the next tick")

    def _sweep(self) -> None:
        while not self._stop.wait(FINISH_SWEEP_SECS):
            try:
                run_due_timers(self)  # finishes, wrap-ups, postponed chats
                run_timeouts(self)
                run_ring_timeouts(self)  # and the queue: routes what waits
                do_refresh_availability(self)  # operating hours open and close with time
                do_push_board(self)  # the supervisors' board, when it changed
            except ChatUnavailable:
                # Redis is away or the org lease busy: nothing changed; the next sweep.
                log.warning("the chat state is unavailable; sweeping again in a moment")
            except Exception:
                log.exception("writing due chats failed; retrying on the next sweep")
