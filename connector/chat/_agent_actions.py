"""What agents do: connect, status, accept, send, resync, invite, transfer, end, agent
chats, typing; and the CRM link of a chat."""

from __future__ import annotations

import uuid
from typing import Any

from connector.chat import events
from connector.chat._engine import EngineCore
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
    online_agent_channels,
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

__all__ = ["AgentActions"]


class AgentActions(EngineCore):
    """The agent side of `ChatEngine`."""

    # ---------------------------------------------------------------- agents

    def agent_profile(self, agent_id: str) -> AgentLike:
        profile = self.directory.agent(agent_id)
        if profile is None:
            raise ChatForbidden("You no longer have an agent profile.")
        return profile

    def do_agent_connect(self, session: AgentSession) -> None:
        """Register a console; answer `snapshot`."""
        with self._changing():
            profile = self.agent_profile(session.agent_id)
            presence = self._presence(session.agent_id)
            came_online = not presence.online
            presence.connections += 1
            self.hub.subscribe(agent_channel(session.agent_id), session.subscriber)
            self.hub.send_to(session.subscriber, self._snapshot(profile, presence))
            if came_online:
                self._publish_agent(profile, presence)
                self._refresh_availability(profile.topic_ids)

    def _snapshot(self, profile: AgentLike, presence: AgentPresence) -> dict[str, Any]:
        agents = [agent_view(a, self._presence(a.agent_id)) for a in self.directory.agents()]
        visitors = []
        for visitor in self._visitors.values():
            widget = self.directory.widget(visitor.widget_id)
            if widget is not None and can_see(profile.topic_ids, widget.topic_ids):
                visitors.append(visitor_view(visitor, widget_name=widget.name))
        incoming, chats = [], []
        for conversation in self._conversations.values():
            if not conversation.is_open:
                continue
            if conversation.has_agent(profile.agent_id):
                chats.append(self._chat(conversation))
            elif (
                conversation.state is ConversationState.WAITING
                and presence.status is AgentStatus.AVAILABLE
                and self._may_take(profile, conversation)
            ):
                incoming.append(self._chat(conversation))
        return events.event(
            events.SNAPSHOT,
            me={
                "agent_id": profile.agent_id,
                "name": profile.name,
                "status": presence.status.value,
            },
            agents=agents,
            visitors=visitors,
            incoming=incoming,
            chats=chats,
            labels=[
                label_view(label)
                for label in sorted(
                    self.directory.labels().values(), key=lambda item: item.name.casefold()
                )
            ],
        )

    def _publish_agent(self, profile: AgentLike, presence: AgentPresence) -> None:
        self.hub.publish(
            events.event(events.AGENT_UPDATED, agent=agent_view(profile, presence)),
            online_agent_channels(self._routes()) | {agent_channel(profile.agent_id)},
        )

    def do_agent_disconnect(self, session: AgentSession) -> None:
        """The console closed; the agent is offline when it was their last one."""
        with self._changing():
            self.hub.unsubscribe_all(session.subscriber)
            presence = self._presence(session.agent_id)
            presence.connections = max(0, presence.connections - 1)
            profile = self.directory.agent(session.agent_id)
            if not presence.online and profile is not None:
                self._publish_agent(profile, presence)
                self._refresh_availability(profile.topic_ids)

    def do_agent_set_status(self, session: AgentSession, *, status: AgentStatus) -> None:
        """Available, Busy or Away; only Available agents are offered new chats."""
        with self._changing():
            profile = self.agent_profile(session.agent_id)
            presence = self._presence(session.agent_id)
            if presence.status is status:
                self._publish_agent(profile, presence)
                return
            self.state.save_agent_status(session.agent_id, status)
            presence.status = status
            self._publish_agent(profile, presence)
            me = {agent_channel(profile.agent_id)}
            for conversation in self._conversations.values():
                if conversation.state is not ConversationState.WAITING or not can_see(
                    profile.topic_ids, self._widget_topics(conversation)
                ):
                    continue
                if status is AgentStatus.AVAILABLE:
                    frame = events.event(events.CHAT_OFFERED, chat=self._chat(conversation))
                else:
                    frame = events.event(
                        events.CHAT_WITHDRAWN, conversation_id=conversation.conversation_id
                    )
                self.hub.publish(frame, me)
            self._refresh_availability(profile.topic_ids)

    def do_agent_accept(self, session: AgentSession, *, conversation_id: str) -> None:
        """Take a waiting chat. The first accept wins; a late one raises ChatConflict."""
        with self._changing():
            profile = self.agent_profile(session.agent_id)
            conversation = self._conversations.get(conversation_id)
            if conversation is None or conversation.kind is not ConversationKind.VISITOR:
                raise ChatNotFound("There is no such chat.")
            if not self._may_take(profile, conversation):
                raise ChatNotFound("There is no such chat.")
            if conversation.state is ConversationState.ENDED:
                raise ChatEnded("The visitor has ended this chat.")
            if conversation.state is ConversationState.ACTIVE:
                raise ChatConflict("Another agent has already accepted this chat.")
            conversation.state = ConversationState.ACTIVE
            conversation.accepted_at = self._clock()
            conversation.owner_agent_id = profile.agent_id
            conversation.participants.append(Participant("agent", profile.agent_id, profile.name))
            message = self._append_system(conversation, f"{profile.name} joined the chat.")
            me = agent_channel(profile.agent_id)
            self.hub.publish(
                events.event(events.CHAT_ACCEPTED, chat=self._chat(conversation)), {me}
            )
            others = watcher_channels(self._widget_topics(conversation), self._routes()) - {me}
            self.hub.publish(
                events.event(events.CHAT_WITHDRAWN, conversation_id=conversation_id), others
            )
            self._publish_visitor_agent(conversation)
            self._publish_message(conversation, message)

    def _publish_visitor_agent(self, conversation: Conversation) -> None:
        """Tell the visitor's side which agent now answers the chat (lock held)."""
        conversation_id = conversation.conversation_id
        self.hub.publish(
            events.event(
                events.CHAT_ACCEPTED,
                conversation_id=conversation_id,
                agent=self._visitor_agent(conversation),
            ),
            {chat_channel(conversation_id)},
        )

    def do_agent_send(
        self, session: AgentSession, *, conversation_id: str, client_id: str, text: str
    ) -> None:
        """Store an agent's message (snippets expanded) and relay it."""
        with self._changing():
            profile = self.agent_profile(session.agent_id)
            conversation = self._agent_conversation(profile.agent_id, conversation_id)
            message = self._store_sent(
                session.subscriber,
                conversation,
                kind=SenderKind.AGENT,
                sender_id=profile.agent_id,
                sender_name=profile.name,
                text=expand_snippets(text, self.directory.snippets()),
                client_id=client_id,
            )
            if message is not None:
                conversation.waiting_since = None
                self._publish_message(conversation, message)

    def do_agent_resync(
        self, session: AgentSession, *, conversation_id: str, since_seq: int
    ) -> None:
        """Send the agent every message after `since_seq`, each as `message.created`."""
        with self._changing():
            profile = self.agent_profile(session.agent_id)
            conversation = self._conversation(conversation_id)
            allowed = conversation is not None and (
                conversation.has_agent(profile.agent_id)
                or (
                    conversation.state is ConversationState.WAITING
                    and self._may_take(profile, conversation)
                )
            )
            if not allowed:
                raise ChatNotFound("There is no such chat.")
            for message in self.state.messages(conversation_id, since_seq=since_seq):
                self.hub.send_to(session.subscriber, message_view(message))

    def _target_agent(
        self, conversation: Conversation, agent_id: str, *, may_be_present: bool = False
    ) -> AgentLike:
        if not conversation.is_open:
            raise ChatEnded("This chat has ended.")
        if conversation.state is not ConversationState.ACTIVE:
            raise ChatInvalid("Accept the chat first.")
        target = self.directory.agent(agent_id)
        if target is None:
            raise ChatNotFound("There is no such agent.")
        if conversation.has_agent(agent_id):
            if may_be_present:
                return target
            raise ChatInvalid(f"{target.name} is already in this chat.")
        if conversation.kind is ConversationKind.VISITOR and not can_see(
            target.topic_ids, self._widget_topics(conversation)
        ):
            raise ChatForbidden(f"{target.name} does not serve this widget's topics.")
        if not self._presence(agent_id).online:
            raise ChatUnavailable(f"{target.name} is not online.")
        return target

    def do_agent_invite(
        self, session: AgentSession, *, conversation_id: str, agent_id: str
    ) -> None:
        """Add another agent to the chat; the inviter stays."""
        with self._changing():
            profile = self.agent_profile(session.agent_id)
            conversation = self._agent_conversation(profile.agent_id, conversation_id)
            target = self._target_agent(conversation, agent_id)
            conversation.participants.append(Participant("agent", target.agent_id, target.name))
            message = self._append_system(conversation, f"{target.name} joined the chat.")
            target_channel = agent_channel(target.agent_id)
            self.hub.publish(
                events.event(events.CHAT_ACCEPTED, chat=self._chat(conversation)),
                {target_channel},
            )
            self._publish_chat_updated(conversation, skip={target_channel})
            self._publish_message(conversation, message)

    def do_agent_transfer(
        self, session: AgentSession, *, conversation_id: str, agent_id: str
    ) -> None:
        """Hand the chat to another agent, who becomes its owner; the sender leaves it."""
        with self._changing():
            profile = self.agent_profile(session.agent_id)
            conversation = self._agent_conversation(profile.agent_id, conversation_id)
            if agent_id == profile.agent_id:
                raise ChatInvalid("Pick another agent to transfer the chat to.")
            target = self._target_agent(conversation, agent_id, may_be_present=True)
            for participant in conversation.participants:
                if participant.kind == "agent" and participant.id == profile.agent_id:
                    participant.active = False
            if not conversation.has_agent(target.agent_id):
                conversation.participants.append(Participant("agent", target.agent_id, target.name))
            if conversation.kind is ConversationKind.VISITOR:
                conversation.owner_agent_id = target.agent_id
            message = self._append_system(
                conversation, f"{profile.name} transferred the chat to {target.name}."
            )
            target_channel = agent_channel(target.agent_id)
            self.hub.publish(
                events.event(events.CHAT_WITHDRAWN, conversation_id=conversation_id),
                {agent_channel(profile.agent_id)},
            )
            self.hub.publish(
                events.event(events.CHAT_ACCEPTED, chat=self._chat(conversation)),
                {target_channel},
            )
            self._publish_chat_updated(conversation, skip={target_channel})
            if conversation.kind is ConversationKind.VISITOR:
                self._publish_visitor_agent(conversation)
            self._publish_message(conversation, message)

    def do_agent_end(self, session: AgentSession, *, conversation_id: str) -> None:
        """An agent ends the chat (for everyone in it)."""
        with self._changing():
            profile = self.agent_profile(session.agent_id)
            conversation = self._agent_conversation(profile.agent_id, conversation_id)
            if not conversation.is_open:
                raise ChatEnded("This chat has ended.")
            self._end(conversation, by="agent", name=profile.name)

    def do_agent_chat_start(self, session: AgentSession, *, agent_id: str) -> None:
        """Open a chat between this agent and another; both get `chat.accepted`."""
        with self._changing():
            profile = self.agent_profile(session.agent_id)
            target = self.directory.agent(agent_id)
            if target is None:
                raise ChatNotFound("There is no such agent.")
            if target.agent_id == profile.agent_id:
                raise ChatInvalid("Pick another agent to chat with.")
            now = self._clock()
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
            )
            self.state.save_conversation(conversation)
            self._conversations[conversation.conversation_id] = conversation
            self.hub.publish(
                events.event(events.CHAT_ACCEPTED, chat=self._chat(conversation)),
                conversation_channels(conversation),
            )

    def do_agent_typing(self, session: AgentSession, *, conversation_id: str, on: bool) -> None:
        """Forward an agent's typing state to the rest of the chat."""
        with self._changing():
            profile = self.agent_profile(session.agent_id)
            conversation = self._agent_conversation(profile.agent_id, conversation_id)
            if conversation.is_open:
                self.hub.publish(
                    events.event(
                        events.TYPING, conversation_id=conversation_id, on=on, name=profile.name
                    ),
                    conversation_channels(conversation) - {agent_channel(profile.agent_id)},
                )

    def do_agent_labels(
        self, session: AgentSession, *, conversation_id: str, label_ids: list[str]
    ) -> None:
        """Set the chat's labels (existing `crmchat_label` ids); its agents get
        `chat.updated`. Raises ChatInvalid for an unknown label, ChatEnded once the chat
        is written to CRM."""
        with self._changing():
            profile = self.agent_profile(session.agent_id)
            conversation = self._agent_conversation(profile.agent_id, conversation_id)
            if conversation.kind is not ConversationKind.VISITOR:
                raise ChatInvalid("Only a chat with a visitor has labels.")
            if conversation.finished or conversation.conversation_id in self._finishing:
                raise ChatEnded("This chat is already written to CRM.")
            known = self.directory.labels()
            wanted = list(dict.fromkeys(label_id.lower() for label_id in label_ids))
            unknown = [label_id for label_id in wanted if label_id not in known]
            if unknown:
                raise ChatInvalid("There is no such label.")
            conversation.labels = wanted
            self.state.save_conversation(conversation)
            self._publish_chat_updated(conversation, skip=set())
