"""What a supervisor does (docs/agent-workspace.md, "Supervisor"): the board of every open
chat and queue, reading any chat, joining it; messaging its agent privately is a consult
(actions/consults.py) a supervisor may open on a chat they are not in.

A supervisor is an agent (an agent profile) whose user holds the CRM Chat Supervisor role
(or an administrator's); the socket checks the role at connect (`AgentSession.supervisor`)
and the HTTP views with `require_roles(SUPERVISOR_ROLES)`. The board is read from the
engine's working copy, so it costs Dataverse nothing.

The board is pushed, not polled, and only what changed: a supervisor's console gets the
whole `supervisor.board` when it connects (`watch_board`), then `supervisor.board_changed`
with the rows added or changed and the keys of those removed (chats by conversation id,
queues by topic id, agents by agent id) whenever something changed, at most once a sweep
(`do_push_board`, every second). A burst of messages across the organisation costs each
supervisor one small frame a second, and a quiet organisation none. Every supervisor of
the process shares one baseline (`engine.board_rows`, under `engine.board_lock`): a console
that connects first brings the others up to date, then gets the baseline whole, so all
apply the same changes from then on. Each process pushes to the supervisors connected to
it, from its working copy brought up to date (`engine.reading`), so nothing crosses the bus.

Building the board holds the engine lock only to copy what each row needs out of the
working copy (`_capture`: plain values, no formatting); the rows are made, compared and
sent after the lock is released, so a 1,000-chat board no longer stalls every chat's relay
for the whole build (issue 7).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from connector.chat import events
from connector.chat.actions.agents import agent_profile
from connector.chat.actions.conversations import (
    agent_presence,
    append_system_line,
    chat_of,
    find_conversation,
    publish_chat_updated,
    publish_message,
    routing_topics,
)
from connector.chat.errors import ChatEnded, ChatForbidden, ChatInvalid, ChatNotFound
from connector.chat.model import (
    ConversationKind,
    ConversationState,
    Message,
    Participant,
)
from connector.chat.routing import agent_channel
from connector.chat.sessions import AgentSession
from connector.chat.views import iso, message_view

if TYPE_CHECKING:
    from connector.chat.engine import ChatEngine

__all__ = [
    "SUPERVISOR_CHANNEL",
    "access_supervised_chat",
    "board_delta",
    "board_rows",
    "do_push_board",
    "do_supervisor_join",
    "supervisor_board",
    "watch_board",
]

# The hub channel of this process's supervisor consoles.
SUPERVISOR_CHANNEL = "supervisors"


# The board's parts and the key of each part's rows.
BOARD_KEYS = {"chats": "conversation_id", "queues": "topic_id", "agents": "agent_id"}
# A board as rows: part -> key -> row.
BoardRows = dict[str, dict[str, dict[str, Any]]]


def watch_board(engine: ChatEngine, session: AgentSession) -> None:
    """A supervisor's console connected: it gets the board now, and its changes from now
    on (nothing for a plain agent). The hub forgets it when the socket closes."""
    if not session.supervisor:
        return
    with engine.board_lock:
        _push_changes(engine)  # the others catch up, so the baseline is the board now
        if engine.board_rows is None:
            engine.board_rows = board_rows(engine)
        engine.hub.subscribe(SUPERVISOR_CHANNEL, session.subscriber)
        engine.hub.send_to(
            session.subscriber,
            events.event(events.SUPERVISOR_BOARD, board=_board_of(engine.board_rows)),
        )
    engine.hub.flush()


def do_push_board(engine: ChatEngine) -> bool:
    """Send this process's supervisors what changed on the board since they were last
    sent it; True when something was sent. Called by the engine's sweep."""
    with engine.board_lock:
        sent = _push_changes(engine)
    if sent:
        engine.hub.flush()
    return sent


def _push_changes(engine: ChatEngine) -> bool:
    """The rows changed since the baseline to every supervisor, and the baseline moved on
    (board lock held). With no supervisor left, the baseline is dropped: the next one to
    connect gets a board built then, and no board is built for nobody."""
    if engine.hub.subscribers(SUPERVISOR_CHANNEL) == 0:
        engine.board_rows = None
        return False
    rows = board_rows(engine)
    delta = board_delta(engine.board_rows or {}, rows)
    engine.board_rows = rows
    if delta is None:
        return False
    engine.hub.publish(events.event(events.SUPERVISOR_BOARD_CHANGED, **delta), {SUPERVISOR_CHANNEL})
    return True


def board_delta(old: BoardRows, new: BoardRows) -> dict[str, Any] | None:
    """`{"changed": {part: [row…]}, "removed": {part: [key…]}}` from `old` to `new`; None
    when nothing changed. A part with nothing to say is left out."""
    changed: dict[str, list[dict[str, Any]]] = {}
    removed: dict[str, list[str]] = {}
    for part in BOARD_KEYS:
        before, after = old.get(part, {}), new.get(part, {})
        rows = [row for key, row in after.items() if before.get(key) != row]
        gone = [key for key in before if key not in after]
        if rows:
            changed[part] = rows
        if gone:
            removed[part] = gone
    if not changed and not removed:
        return None
    return {"changed": changed, "removed": removed}


def supervisor_board(engine: ChatEngine) -> dict[str, Any]:
    """Every open visitor chat, every topic's queue and every agent, as they are now."""
    return _board_of(board_rows(engine))


def _board_of(rows: BoardRows) -> dict[str, Any]:
    """The board's lists, in the order the console shows them."""
    return {
        "chats": sorted(rows["chats"].values(), key=lambda c: str(c["started_at"])),
        "queues": sorted(rows["queues"].values(), key=lambda q: str(q["name"]).casefold()),
        "agents": sorted(rows["agents"].values(), key=lambda a: str(a["name"]).casefold()),
    }


@dataclass(frozen=True)
class _ChatCopy:
    """What a chat's row needs, copied out of the working copy under the lock."""

    conversation_id: str
    waiting: bool
    state: str
    visitor_name: str | None
    widget_id: str | None
    topic_ids: tuple[str, ...]
    agents: tuple[tuple[str, str], ...]
    started_at: datetime
    accepted_at: datetime | None
    waiting_since: datetime | None
    last_seq: int


@dataclass(frozen=True)
class _AgentCopy:
    agent_id: str
    name: str
    topic_ids: frozenset[str]
    status: str
    online: bool


def _capture(engine: ChatEngine) -> tuple[list[_ChatCopy], list[_AgentCopy]]:
    """The plain values the board is made of (the only part that holds the engine lock)."""
    with engine.reading():
        chats = [
            _ChatCopy(
                c.conversation_id,
                c.state is ConversationState.WAITING,
                c.state.value,
                c.visitor_name,
                c.widget_id,
                tuple(sorted(routing_topics(engine, c))),
                tuple((p.id, p.name) for p in c.participants if p.kind == "agent" and p.active),
                c.started_at,
                c.accepted_at,
                c.waiting_since,
                c.last_seq,
            )
            for c in engine.conversations.values()
            if c.kind is ConversationKind.VISITOR and c.is_open
        ]
        agents = []
        for profile in engine.directory.agents():
            presence = agent_presence(engine, profile.agent_id)
            agents.append(
                _AgentCopy(
                    profile.agent_id,
                    profile.name,
                    profile.topic_ids,
                    presence.status.value,
                    presence.online,
                )
            )
    return chats, agents


def board_rows(engine: ChatEngine) -> BoardRows:
    """The board as rows keyed for comparing (`board_delta`), made outside the lock."""
    captured, agent_copies = _capture(engine)
    topics = engine.directory.topics()
    counts = {topic_id: Counter[str]() for topic_id in topics}
    oldest: dict[str, str] = {}
    load: Counter[str] = Counter()
    chats: dict[str, dict[str, Any]] = {}
    for chat in captured:
        load.update(agent_id for agent_id, _ in chat.agents)
        widget = engine.directory.widget(chat.widget_id or "")
        since = str(iso(chat.started_at))
        for topic_id in chat.topic_ids:
            if topic_id not in counts:
                continue
            counts[topic_id]["waiting" if chat.waiting else "active"] += 1
            if chat.waiting and since < oldest.get(topic_id, "~"):
                oldest[topic_id] = since
        chats[chat.conversation_id] = {
            "conversation_id": chat.conversation_id,
            "state": chat.state,
            "visitor_name": chat.visitor_name,
            "widget": widget.name if widget is not None else "",
            "topics": [topics[t].name for t in chat.topic_ids if t in topics],
            "agents": [{"agent_id": a, "name": name} for a, name in chat.agents],
            "started_at": since,
            "accepted_at": iso(chat.accepted_at),
            "waiting_since": iso(chat.waiting_since),
            "last_seq": chat.last_seq,
        }
    agents: dict[str, dict[str, Any]] = {}
    for agent in agent_copies:
        if agent.online:
            for topic_id in agent.topic_ids & counts.keys():
                counts[topic_id]["agents_online"] += 1
                if agent.status == "available":
                    counts[topic_id]["agents_available"] += 1
        agents[agent.agent_id] = {
            "agent_id": agent.agent_id,
            "name": agent.name,
            "status": agent.status,
            "online": agent.online,
            "chats": load[agent.agent_id],
        }
    queues = {
        topic_id: {
            "topic_id": topic_id,
            "name": topics[topic_id].name,
            "waiting": count["waiting"],
            "active": count["active"],
            "oldest_waiting_since": oldest.get(topic_id),
            "agents_available": count["agents_available"],
            "agents_online": count["agents_online"],
        }
        for topic_id, count in counts.items()
    }
    return {"chats": chats, "queues": queues, "agents": agents}


def access_supervised_chat(engine: ChatEngine, conversation_id: str) -> list[dict[str, Any]]:
    """Every message of a visitor chat, open or ended (the supervisor reads any chat)."""
    with engine.reading():
        conversation = find_conversation(engine, conversation_id)
        if conversation is None or conversation.kind is not ConversationKind.VISITOR:
            raise ChatNotFound("There is no such chat.")
        messages: list[Message] = engine.state.messages(conversation_id)
    return [_item(m) for m in messages]


def _item(message: Message) -> dict[str, Any]:
    item = message_view(message)
    del item["type"]
    return item


def do_supervisor_join(engine: ChatEngine, session: AgentSession, *, conversation_id: str) -> None:
    """A supervisor joins an active visitor chat, whatever its topics: they get
    `chat.accepted`, its agents `chat.updated`, everyone the line "<name> joined"."""
    if not session.supervisor:
        raise ChatForbidden("Only a supervisor may join a chat uninvited.")
    with engine.changing():
        profile = agent_profile(engine, session.agent_id)
        conversation = engine.conversations.get(conversation_id)
        if conversation is None or conversation.kind is not ConversationKind.VISITOR:
            raise ChatNotFound("There is no such chat.")
        if not conversation.is_open:
            raise ChatEnded("This chat has ended.")
        if conversation.state is not ConversationState.ACTIVE:
            raise ChatInvalid("Nobody has accepted this chat yet.")
        if conversation.has_agent(profile.agent_id):
            raise ChatInvalid("You are already in this chat.")
        conversation.participants.append(Participant("agent", profile.agent_id, profile.name))
        engine.workload.note(conversation)
        message = append_system_line(engine, conversation, f"{profile.name} joined the chat.")
        me = agent_channel(profile.agent_id)
        engine.bus.publish(
            events.event(events.CHAT_ACCEPTED, chat=chat_of(engine, conversation)), {me}
        )
        publish_chat_updated(engine, conversation, skip={me})
        publish_message(engine, conversation, message)
