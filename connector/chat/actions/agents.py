"""What agents do: connect, status, accept, send, resync, invite, transfer, end, agent
chats, typing, labels."""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

from connector.chat import events
from connector.chat.actions.channels import check_channel_reply
from connector.chat.actions.conversations import (
    agent_conversation,
    agent_presence,
    agent_routes,
    append_system_line,
    chat_of,
    find_conversation,
    masked_for_chat,
    may_take,
    note_agent,
    open_agent_chat,
    publish_chat_updated,
    publish_message,
    refresh_availability,
    relay_sent,
    relay_shared,
    routing_topics,
    shared_chat,
    shared_relay,
    visitor_agent,
)
from connector.chat.actions.finishing import end_chat, end_wrapup
from connector.chat.actions.postpone import bring_back, forget_postpone
from connector.chat.actions.queues import pick_from_queue, route_waiting
from connector.chat.dispositions import check_disposition
from connector.chat.errors import (
    ChatConflict,
    ChatEnded,
    ChatForbidden,
    ChatInvalid,
    ChatNotFound,
    ChatUnavailable,
)
from connector.chat.model import (
    AgentPresence,
    AgentStatus,
    Conversation,
    ConversationKind,
    ConversationState,
    Participant,
    SenderKind,
)
from connector.chat.ports import AgentLike
from connector.chat.routing import (
    agent_channel,
    can_see,
    chat_channel,
    conversation_channels,
    watcher_channels,
)
from connector.chat.sessions import AgentSession
from connector.chat.snippets import expand_snippets
from connector.chat.views import (
    agent_view,
    label_view,
    message_view,
    visitor_view,
)

if TYPE_CHECKING:
    from connector.chat.engine import ChatEngine

__all__ = [
    "agent_profile",
    "do_agent_accept",
    "do_agent_chat_start",
    "do_agent_connect",
    "do_agent_disconnect",
    "do_agent_end",
    "do_agent_invite",
    "do_agent_labels",
    "do_agent_resync",
    "do_agent_send",
    "do_agent_set_status",
    "do_agent_transfer",
    "do_agent_typing",
    "do_flush_presence",
]

log = logging.getLogger(__name__)

# Presence frames a second, over every console, that the ticks may cost: with more agents
# online than a tick's frame to each allows (800 at the 0.2 s tick), frames go out less
# often (0.5 s at 2,000 online), so a burst of sign-ins costs a bounded number of sends
# however many consoles are open. Half a second is still below what a status dot shows.
PRESENCE_SENDS_PER_SEC = 4000


def agent_profile(engine: ChatEngine, agent_id: str) -> AgentLike:
    profile = engine.directory.agent(agent_id)
    if profile is None:
        raise ChatForbidden("You no longer have an agent profile.")
    return profile


def do_agent_connect(engine: ChatEngine, session: AgentSession) -> None:
    """Register a console; answer `snapshot`."""
    with engine.changing():
        profile = agent_profile(engine, session.agent_id)
        presence = agent_presence(engine, session.agent_id)
        came_online = not presence.online
        presence.connections = engine.count_connection(
            f"agent:{session.agent_id}", presence.connections, +1
        )
        note_agent(engine, session.agent_id)
        if came_online:
            # Before this console subscribes: what now rings for them is in its snapshot.
            route_waiting(engine)
        engine.hub.subscribe(agent_channel(session.agent_id), session.subscriber)
        engine.hub.send_to(session.subscriber, _snapshot(engine, session, profile, presence))
        if came_online:
            _publish_agent(engine, profile, presence)
            refresh_availability(engine, profile.topic_ids)


def _snapshot(
    engine: ChatEngine, session: AgentSession, profile: AgentLike, presence: AgentPresence
) -> dict[str, Any]:
    # Online agents only: a console lists, invites and transfers to no one else, and an
    # agent going offline later arrives as a row of `agents.updated`.
    agents = [agent_view(profile, presence)]
    rows = engine.roster.rows
    for agent_id in engine.roster.online():
        if agent_id == profile.agent_id:
            continue
        row = rows.get(agent_id)
        if row is None:
            other_profile = engine.directory.agent(agent_id)
            if other_profile is None:
                continue
            row = rows[agent_id] = agent_view(other_profile, agent_presence(engine, agent_id))
        agents.append(row)
    # The visitors of this agent's topics (the roster's), in the order they arrived.
    visitors = []
    present = [engine.visitors.get(v) for v in engine.roster.visitors_for(profile.topic_ids)]
    for visitor in sorted(filter(None, present), key=lambda v: (v.first_seen, v.visitor_id)):
        widget = engine.directory.widget(visitor.widget_id)
        if widget is not None and can_see(profile.topic_ids, widget.topic_ids):
            visitors.append(visitor_view(visitor, widget_name=widget.name))
    # Incoming: the chats ringing for this agent; waiting: every waiting chat they may
    # pick up whatever their status (actions/queues.py).
    incoming, waiting = [], []
    chats = [
        chat_of(engine, conversation)
        for conversation in engine.workload.chats_of(profile.agent_id, engine.conversations)
        if conversation.has_agent(profile.agent_id)
    ]
    for conversation in engine.workload.waiting(engine.conversations):
        if not conversation.has_agent(profile.agent_id) and may_take(engine, profile, conversation):
            chat = chat_of(engine, conversation)
            waiting.append(chat)
            if conversation.ringing_agent_id == profile.agent_id:
                incoming.append(chat)
    return events.event(
        events.SNAPSHOT,
        me={
            "agent_id": profile.agent_id,
            "name": profile.name,
            "status": presence.status.value,
            "supervisor": session.supervisor,
        },
        agents=agents,
        visitors=visitors,
        incoming=incoming,
        waiting=waiting,
        chats=chats,
        topics=[
            {"id": topic.topic_id, "name": topic.name}
            for topic in sorted(
                engine.directory.topics().values(), key=lambda item: item.name.casefold()
            )
        ],
        labels=[
            label_view(label)
            for label in sorted(
                engine.directory.labels().values(), key=lambda item: item.name.casefold()
            )
        ],
    )


def _publish_agent(engine: ChatEngine, profile: AgentLike, presence: AgentPresence) -> None:
    """Queue the agent's row for the next presence tick (lock held): N agents signing in
    at once cost each console one frame, not N (`do_flush_presence`)."""
    engine.changed_agents[profile.agent_id] = None


def do_flush_presence(engine: ChatEngine) -> int:
    """Send every agent whose presence changed since the last tick to every online agent
    (and to that agent), as one `agents.updated` frame; returns how many rows it sent.
    The engine calls it every `PRESENCE_TICK_SECS`; with so many agents online that a
    frame each tick would pass `PRESENCE_SENDS_PER_SEC`, the rows wait for a later tick."""
    with engine.lock:
        if not engine.changed_agents:
            return 0  # the common case: no org lease taken for nothing
        every = engine.roster.online_count() / PRESENCE_SENDS_PER_SEC
        if every > engine.presence_tick and time.monotonic() - engine.presence_sent_at < every:
            return 0
    with engine.changing():
        agent_ids = list(engine.changed_agents)
        engine.changed_agents.clear()
        rows = []
        # Every online agent: agent presence is visible to all agents (the roster's list).
        channels = {agent_channel(agent_id) for agent_id in engine.roster.online()}
        for agent_id in agent_ids:
            profile = engine.directory.agent(agent_id)
            if profile is None:
                continue
            rows.append(agent_view(profile, agent_presence(engine, agent_id)))
            channels.add(agent_channel(agent_id))
        if rows:
            engine.bus.publish(events.event(events.AGENTS_UPDATED, agents=rows), channels)
            engine.presence_sent_at = time.monotonic()
        return len(rows)


def do_agent_disconnect(engine: ChatEngine, session: AgentSession) -> None:
    """The console closed; the agent is offline when it was their last one."""
    with engine.changing():
        engine.hub.unsubscribe_all(session.subscriber)
        presence = agent_presence(engine, session.agent_id)
        presence.connections = engine.count_connection(
            f"agent:{session.agent_id}", presence.connections, -1
        )
        note_agent(engine, session.agent_id)
        profile = engine.directory.agent(session.agent_id)
        if not presence.online and profile is not None:
            _publish_agent(engine, profile, presence)
            refresh_availability(engine, profile.topic_ids)
            route_waiting(engine)  # the chats ringing for them ring for someone else


def do_agent_set_status(engine: ChatEngine, session: AgentSession, *, status: AgentStatus) -> None:
    """Available, Busy or Away; only Available agents are offered new chats (one ringing
    offer moves on when they leave Available). Paused is the service's, never chosen."""
    if status is AgentStatus.PAUSED:
        raise ChatInvalid("Paused is set by the service; choose Available, Busy or Away.")
    with engine.changing():
        profile = agent_profile(engine, session.agent_id)
        presence = agent_presence(engine, session.agent_id)
        if presence.status is status:
            _publish_agent(engine, profile, presence)
            return
        engine.state.save_agent_status(session.agent_id, status)
        presence.status = status
        note_agent(engine, session.agent_id)
        _publish_agent(engine, profile, presence)
        refresh_availability(engine, profile.topic_ids)
        route_waiting(engine)


def do_agent_accept(engine: ChatEngine, session: AgentSession, *, conversation_id: str) -> None:
    """Take a waiting chat: the one ringing for the agent, or one they pick from Waiting
    chats (whatever their status and capacity: their choice). The first accept wins; a
    late one raises ChatConflict."""
    with engine.changing():
        profile = agent_profile(engine, session.agent_id)
        conversation = engine.conversations.get(conversation_id)
        if conversation is None or conversation.kind is not ConversationKind.VISITOR:
            raise ChatNotFound("There is no such chat.")
        if not may_take(engine, profile, conversation):
            raise ChatNotFound("There is no such chat.")
        if conversation.state is ConversationState.ENDED:
            raise ChatEnded("The visitor has ended this chat.")
        if conversation.state is ConversationState.ACTIVE:
            raise ChatConflict("Another agent has already accepted this chat.")
        conversation.state = ConversationState.ACTIVE
        conversation.accepted_at = engine.clock()
        conversation.owner_agent_id = profile.agent_id
        conversation.ringing_agent_id = None
        conversation.ring_started_at = None
        conversation.participants.append(Participant("agent", profile.agent_id, profile.name))
        engine.workload.note(conversation)
        message = append_system_line(engine, conversation, f"{profile.name} joined the chat.")
        me = agent_channel(profile.agent_id)
        engine.bus.publish(
            events.event(events.CHAT_ACCEPTED, chat=chat_of(engine, conversation)), {me}
        )
        topics = routing_topics(engine, conversation)
        others = watcher_channels(topics, agent_routes(engine, topics)) - {me}
        engine.bus.publish(
            events.event(events.CHAT_WITHDRAWN, conversation_id=conversation_id), others
        )
        _publish_visitor_agent(engine, conversation)
        publish_message(engine, conversation, message)
        route_waiting(engine)  # the queue moved up


def _publish_visitor_agent(engine: ChatEngine, conversation: Conversation) -> None:
    """Tell the visitor's side which agent now answers the chat (lock held)."""
    conversation_id = conversation.conversation_id
    engine.bus.publish(
        events.event(
            events.CHAT_ACCEPTED,
            conversation_id=conversation_id,
            agent=visitor_agent(engine, conversation),
        ),
        {chat_channel(conversation_id)},
    )


def do_agent_send(
    engine: ChatEngine, session: AgentSession, *, conversation_id: str, client_id: str, text: str
) -> None:
    """Store an agent's message (snippets expanded, masked like a visitor's: a card number
    an agent pastes is not stored either) and relay it."""
    if shared_relay(engine) is not None:
        profile = agent_profile(engine, session.agent_id)
        conversation = _shared_agent_conversation(engine, profile.agent_id, conversation_id)
        # A channel chat's reply rule reads its messages, and answering a postponed chat
        # takes it back: those take the locked path.
        if conversation.channel is None and conversation.postponed_until is None:
            relay_shared(
                engine,
                session.subscriber,
                conversation,
                kind=SenderKind.AGENT,
                sender_id=profile.agent_id,
                sender_name=profile.name,
                text=_agent_text(engine, conversation, text),
                client_id=client_id,
            )
            return
    with engine.changing():
        profile = agent_profile(engine, session.agent_id)
        conversation = agent_conversation(engine, profile.agent_id, conversation_id)
        check_channel_reply(engine, conversation)
        relay_sent(
            engine,
            session.subscriber,
            conversation,
            kind=SenderKind.AGENT,
            sender_id=profile.agent_id,
            sender_name=profile.name,
            text=_agent_text(engine, conversation, text),
            client_id=client_id,
        )
        bring_back(engine, conversation)  # answering a postponed chat takes it back


def _agent_text(engine: ChatEngine, conversation: Conversation, text: str) -> str:
    return masked_for_chat(engine, conversation, expand_snippets(text, engine.directory.snippets()))


def _shared_agent_conversation(
    engine: ChatEngine, agent_id: str, conversation_id: str
) -> Conversation:
    """`agent_conversation` on Redis, as stored now (no lock, no lease)."""
    conversation = shared_chat(engine, conversation_id)
    if conversation is None or not conversation.has_agent(agent_id):
        raise ChatNotFound("There is no such chat.")
    return conversation


def do_agent_resync(
    engine: ChatEngine, session: AgentSession, *, conversation_id: str, since_seq: int
) -> None:
    """Send the agent every message after `since_seq`, each as `message.created`."""
    with engine.changing():
        profile = agent_profile(engine, session.agent_id)
        conversation = find_conversation(engine, conversation_id)
        allowed = conversation is not None and (
            conversation.has_agent(profile.agent_id)
            or (
                conversation.state is ConversationState.WAITING
                and may_take(engine, profile, conversation)
            )
        )
        if not allowed:
            raise ChatNotFound("There is no such chat.")
        for message in engine.state.messages(conversation_id, since_seq=since_seq):
            engine.hub.send_to(session.subscriber, message_view(message))


def _target_agent(
    engine: ChatEngine, conversation: Conversation, agent_id: str, *, may_be_present: bool = False
) -> AgentLike:
    if not conversation.is_open:
        raise ChatEnded("This chat has ended.")
    if conversation.state is not ConversationState.ACTIVE:
        raise ChatInvalid("Accept the chat first.")
    target = engine.directory.agent(agent_id)
    if target is None:
        raise ChatNotFound("There is no such agent.")
    if conversation.has_agent(agent_id):
        if may_be_present:
            return target
        raise ChatInvalid(f"{target.name} is already in this chat.")
    if conversation.kind is ConversationKind.VISITOR and not can_see(
        target.topic_ids, routing_topics(engine, conversation)
    ):
        raise ChatForbidden(f"{target.name} does not serve this widget's topics.")
    if not agent_presence(engine, agent_id).online:
        raise ChatUnavailable(f"{target.name} is not online.")
    return target


def do_agent_invite(
    engine: ChatEngine,
    session: AgentSession,
    *,
    conversation_id: str,
    agent_id: str | None = None,
    topic_id: str | None = None,
) -> None:
    """Add another agent to the chat; the inviter stays. `agent_id` names them; with
    `topic_id` instead, the topic's queue picks them as it would for a new chat (online,
    Available, free capacity, longest idle first: `queues.pick_from_queue`), and
    ChatUnavailable says when nobody of that queue is free."""
    with engine.changing():
        profile = agent_profile(engine, session.agent_id)
        conversation = agent_conversation(engine, profile.agent_id, conversation_id)
        if topic_id is not None:
            target = _queue_invitee(engine, conversation, topic_id)
        elif agent_id is not None:
            target = _target_agent(engine, conversation, agent_id)
        else:
            raise ChatInvalid("Name the agent or the queue to invite.")
        conversation.participants.append(Participant("agent", target.agent_id, target.name))
        engine.workload.note(conversation)
        message = append_system_line(engine, conversation, f"{target.name} joined the chat.")
        target_channel = agent_channel(target.agent_id)
        engine.bus.publish(
            events.event(events.CHAT_ACCEPTED, chat=chat_of(engine, conversation)),
            {target_channel},
        )
        publish_chat_updated(engine, conversation, skip={target_channel})
        publish_message(engine, conversation, message)


def _queue_invitee(engine: ChatEngine, conversation: Conversation, topic_id: str) -> AgentLike:
    """The agent a queue invite goes to (lock held); see `do_agent_invite`. Any topic's
    queue may be asked (another team's expert): its agents serve that topic."""
    if not conversation.is_open:
        raise ChatEnded("This chat has ended.")
    if conversation.kind is not ConversationKind.VISITOR:
        raise ChatInvalid("Only a chat with a visitor can be offered to a queue.")
    if conversation.state is not ConversationState.ACTIVE:
        raise ChatInvalid("Accept the chat first.")
    topic = engine.directory.topics().get(topic_id)
    if topic is None:
        raise ChatNotFound("There is no such topic.")
    agent_id = pick_from_queue(engine, topic.topic_id, conversation)
    target = engine.directory.agent(agent_id) if agent_id is not None else None
    if target is None:
        raise ChatUnavailable(f"Nobody in the {topic.name} queue is free now; try again later.")
    return target


def do_agent_transfer(
    engine: ChatEngine, session: AgentSession, *, conversation_id: str, agent_id: str
) -> None:
    """Hand the chat to another agent, who becomes its owner; the sender leaves it."""
    with engine.changing():
        profile = agent_profile(engine, session.agent_id)
        conversation = agent_conversation(engine, profile.agent_id, conversation_id)
        if agent_id == profile.agent_id:
            raise ChatInvalid("Pick another agent to transfer the chat to.")
        target = _target_agent(engine, conversation, agent_id, may_be_present=True)
        for participant in conversation.participants:
            if participant.kind == "agent" and participant.id == profile.agent_id:
                participant.active = False
        if not conversation.has_agent(target.agent_id):
            conversation.participants.append(Participant("agent", target.agent_id, target.name))
            engine.workload.note(conversation)
        if conversation.kind is ConversationKind.VISITOR:
            conversation.owner_agent_id = target.agent_id
            forget_postpone(engine, conversation)  # the new owner gets it as it is now
        message = append_system_line(
            engine, conversation, f"{profile.name} transferred the chat to {target.name}."
        )
        target_channel = agent_channel(target.agent_id)
        engine.bus.publish(
            events.event(events.CHAT_WITHDRAWN, conversation_id=conversation_id),
            {agent_channel(profile.agent_id)},
        )
        engine.bus.publish(
            events.event(events.CHAT_ACCEPTED, chat=chat_of(engine, conversation)),
            {target_channel},
        )
        publish_chat_updated(engine, conversation, skip={target_channel})
        if conversation.kind is ConversationKind.VISITOR:
            _publish_visitor_agent(engine, conversation)
        publish_message(engine, conversation, message)


def do_agent_end(
    engine: ChatEngine,
    session: AgentSession,
    *,
    conversation_id: str,
    disposition: str | None = None,
) -> None:
    """An agent ends the chat (for everyone in it), with a disposition from its topics'
    list when they have one (ChatDispositionRequired otherwise). On a chat in wrap-up
    (the visitor ended it) the same frame closes the wrap-up with the disposition."""
    with engine.changing():
        profile = agent_profile(engine, session.agent_id)
        conversation = agent_conversation(engine, profile.agent_id, conversation_id)
        if conversation.wrapup_until is not None:
            end_wrapup(engine, conversation, check_disposition(engine, conversation, disposition))
            return
        if not conversation.is_open:
            raise ChatEnded("This chat has ended.")
        conversation.disposition = check_disposition(engine, conversation, disposition)
        end_chat(engine, conversation, by="agent", name=profile.name)


def do_agent_chat_start(engine: ChatEngine, session: AgentSession, *, agent_id: str) -> None:
    """Open a chat between this agent and another; both get `chat.accepted`."""
    with engine.changing():
        profile = agent_profile(engine, session.agent_id)
        target = engine.directory.agent(agent_id)
        if target is None:
            raise ChatNotFound("There is no such agent.")
        if target.agent_id == profile.agent_id:
            raise ChatInvalid("Pick another agent to chat with.")
        conversation = open_agent_chat(engine, profile, target)
        engine.bus.publish(
            events.event(events.CHAT_ACCEPTED, chat=chat_of(engine, conversation)),
            conversation_channels(conversation),
        )


def do_agent_typing(
    engine: ChatEngine, session: AgentSession, *, conversation_id: str, on: bool
) -> None:
    """Forward an agent's typing state to the rest of the chat (on Redis without the
    engine's lock or the org lease: a read and a publish)."""
    if shared_relay(engine) is not None:
        profile = agent_profile(engine, session.agent_id)
        conversation = _shared_agent_conversation(engine, profile.agent_id, conversation_id)
        _publish_typing(engine, conversation, profile, on=on)
        return
    with engine.changing():
        profile = agent_profile(engine, session.agent_id)
        conversation = agent_conversation(engine, profile.agent_id, conversation_id)
        _publish_typing(engine, conversation, profile, on=on)


def _publish_typing(
    engine: ChatEngine, conversation: Conversation, profile: AgentLike, *, on: bool
) -> None:
    if conversation.is_open:
        engine.bus.publish(
            events.event(
                events.TYPING,
                conversation_id=conversation.conversation_id,
                on=on,
                name=profile.name,
            ),
            conversation_channels(conversation) - {agent_channel(profile.agent_id)},
        )


def do_agent_labels(
    engine: ChatEngine, session: AgentSession, *, conversation_id: str, label_ids: list[str]
) -> None:
    """Set the chat's labels (existing `crmchat_label` ids); its agents get
    `chat.updated`. Raises ChatInvalid for an unknown label, ChatEnded once the chat
    is written to CRM."""
    with engine.changing():
        profile = agent_profile(engine, session.agent_id)
        conversation = agent_conversation(engine, profile.agent_id, conversation_id)
        if conversation.kind is not ConversationKind.VISITOR:
            raise ChatInvalid("Only a chat with a visitor has labels.")
        if conversation.finished or conversation.conversation_id in engine.finishing:
            raise ChatEnded("This chat is already written to CRM.")
        known = engine.directory.labels()
        wanted = list(dict.fromkeys(label_id.lower() for label_id in label_ids))
        unknown = [label_id for label_id in wanted if label_id not in known]
        if unknown:
            raise ChatInvalid("There is no such label.")
        conversation.labels = wanted
        engine.state.save_conversation(conversation)
        publish_chat_updated(engine, conversation, skip=set())
