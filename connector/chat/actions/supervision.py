"""What a supervisor does (docs/agent-workspace.md, "Supervisor"): the board of every open
chat and queue, reading any chat, joining it; messaging its agent privately is a consult
(actions/consults.py) a supervisor may open on a chat they are not in.

A supervisor is an agent (an agent profile) whose user holds the CRM Chat Supervisor role
(or an administrator's); the socket checks the role at connect (`AgentSession.supervisor`)
and the HTTP views with `require_roles(SUPERVISOR_ROLES)`. The board is read from the
engine's working copy, so it costs Dataverse nothing.

The board is pushed, not polled: a supervisor's console gets `supervisor.board` when it
connects (`watch_board`) and then whenever the board changed, at most once a sweep
(`do_push_board`, every second): a burst of messages across the organisation costs each
supervisor one frame a second, and a quiet organisation none. Each process pushes to the
supervisors connected to it, from its working copy brought up to date (`engine.reading`),
so nothing crosses the bus.
"""

from __future__ import annotations

import json
from collections import Counter
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
    "do_push_board",
    "do_supervisor_join",
    "supervisor_board",
    "watch_board",
]

# The hub channel of this process's supervisor consoles.
SUPERVISOR_CHANNEL = "supervisors"


def watch_board(engine: ChatEngine, session: AgentSession) -> None:
    """A supervisor's console connected: it gets the board now, and its changes from now
    on (nothing for a plain agent). The hub forgets it when the socket closes."""
    if not session.supervisor:
        return
    engine.hub.subscribe(SUPERVISOR_CHANNEL, session.subscriber)
    engine.hub.send_to(
        session.subscriber,
        events.event(events.SUPERVISOR_BOARD, board=supervisor_board(engine)),
    )
    engine.hub.flush()


def do_push_board(engine: ChatEngine) -> bool:
    """Send the board to this process's supervisors when it differs from what they were
    last sent; True when it was sent. Called by the engine's sweep."""
    if engine.hub.subscribers(SUPERVISOR_CHANNEL) == 0:
        return False
    board = supervisor_board(engine)
    text = json.dumps(board, sort_keys=True)
    if text == engine.board_sent:
        return False
    engine.board_sent = text
    engine.hub.publish(events.event(events.SUPERVISOR_BOARD, board=board), {SUPERVISOR_CHANNEL})
    engine.hub.flush()
    return True


def supervisor_board(engine: ChatEngine) -> dict[str, Any]:
    """Every open visitor chat, every topic's queue and every agent, as they are now."""
    with engine.reading():
        topics = engine.directory.topics()
        chats: list[dict[str, Any]] = []
        counts = {topic_id: Counter[str]() for topic_id in topics}
        oldest: dict[str, str] = {}
        load: Counter[str] = Counter()
        for conversation in engine.conversations.values():
            if conversation.kind is not ConversationKind.VISITOR or not conversation.is_open:
                continue
            load.update(conversation.active_agent_ids())
            topic_ids = sorted(routing_topics(engine, conversation))
            widget = engine.directory.widget(conversation.widget_id or "")
            waiting = conversation.state is ConversationState.WAITING
            for topic_id in topic_ids:
                if topic_id not in counts:
                    continue
                counts[topic_id]["waiting" if waiting else "active"] += 1
                since = str(iso(conversation.started_at))
                if waiting and since < oldest.get(topic_id, "~"):
                    oldest[topic_id] = since
            chats.append(
                {
                    "conversation_id": conversation.conversation_id,
                    "state": conversation.state.value,
                    "visitor_name": conversation.visitor_name,
                    "widget": widget.name if widget is not None else "",
                    "topics": [topics[t].name for t in topic_ids if t in topics],
                    "agents": [
                        {"agent_id": p.id, "name": p.name}
                        for p in conversation.participants
                        if p.kind == "agent" and p.active
                    ],
                    "started_at": iso(conversation.started_at),
                    "accepted_at": iso(conversation.accepted_at),
                    "waiting_since": iso(conversation.waiting_since),
                    "last_seq": conversation.last_seq,
                }
            )
        agents = []
        for profile in engine.directory.agents():
            presence = agent_presence(engine, profile.agent_id)
            if presence.online:
                for topic_id in profile.topic_ids & counts.keys():
                    counts[topic_id]["agents_online"] += 1
                    if presence.status.value == "available":
                        counts[topic_id]["agents_available"] += 1
            agents.append(
                {
                    "agent_id": profile.agent_id,
                    "name": profile.name,
                    "status": presence.status.value,
                    "online": presence.online,
                    "chats": load[profile.agent_id],
                }
            )
        queues = [
            {
                "topic_id": topic_id,
                "name": topics[topic_id].name,
                "waiting": count["waiting"],
                "active": count["active"],
                "oldest_waiting_since": oldest.get(topic_id),
                "agents_available": count["agents_available"],
                "agents_online": count["agents_online"],
            }
            for topic_id, count in counts.items()
        ]
    chats.sort(key=lambda c: str(c["started_at"]))
    return {
        "chats": chats,
        "queues": sorted(queues, key=lambda q: str(q["name"]).casefold()),
        "agents": sorted(agents, key=lambda a: str(a["name"]).casefold()),
    }


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
