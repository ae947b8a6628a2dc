"""Record identification beside the engine: the contact a chat is with, found off the
engine lock, then `chat.updated`."""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from connector.chat import events
from connector.chat.actions.conversations import (
    agent_routes,
    chat_of,
    may_take,
    routing_topics,
)
from connector.chat.model import (
    Conversation,
    ConversationState,
)
from connector.chat.routing import (
    agent_channel,
    conversation_channels,
)

if TYPE_CHECKING:
    from connector.chat.engine import ChatEngine

__all__ = ["IDENTIFY_WORKERS", "identify_later", "wait_identifications"]

log = logging.getLogger(__name__)


# Record identification runs beside the engine, never under its lock; two threads keep a
# burst of chat starts moving while one Dataverse query is slow.
IDENTIFY_WORKERS = 2


def _has_context_email(context: dict[str, Any]) -> bool:
    return any(name.casefold() == "email" for name in context)


def identify_later(
    engine: ChatEngine, conversation: Conversation, identity_email: str | None
) -> None:
    """Look the chat's contact up beside the engine (never under its lock)."""
    if engine.identifier is None or conversation.regarding is not None:
        return
    if engine.identify_pool is None:
        engine.identify_pool = ThreadPoolExecutor(
            max_workers=IDENTIFY_WORKERS, thread_name_prefix="chat-identify"
        )
    identifier = engine.identifier
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
        _apply_identification(engine, conversation_id, found)

    engine.identifying = [f for f in engine.identifying if not f.done()]
    engine.identifying.append(engine.identify_pool.submit(run))


def wait_identifications(engine: ChatEngine, timeout_secs: float = 10.0) -> None:
    """Wait until the identifications under way are done (tests, shutdown)."""
    for future in list(engine.identifying):
        future.result(timeout=timeout_secs)


def _apply_identification(engine: ChatEngine, conversation_id: str, found: dict[str, Any]) -> None:
    contact, regarding = found.get("contact"), found.get("regarding")
    if contact is None:
        return
    with engine.changing():
        conversation = engine.conversations.get(conversation_id)
        if conversation is None or conversation.finished:
            return
        conversation.contact = dict(contact)
        if conversation.regarding is None and regarding is not None:
            conversation.regarding = dict(regarding)
        engine.state.save_conversation(conversation)
        _publish_identified(engine, conversation)


def _publish_identified(engine: ChatEngine, conversation: Conversation) -> None:
    """`chat.updated` to the chat's agents, or, while it waits, to the online agents who
    may pick it up (it is in their Waiting chats, and maybe ringing)."""
    if conversation.state is ConversationState.WAITING:
        channels = set()
        for route in agent_routes(engine, routing_topics(engine, conversation)):
            profile = engine.directory.agent(route.agent_id)
            if route.online and profile is not None and may_take(engine, profile, conversation):
                channels.add(agent_channel(route.agent_id))
    else:
        channels = conversation_channels(conversation, visitor=False)
    if channels:
        engine.bus.publish(
            events.event(events.CHAT_UPDATED, chat=chat_of(engine, conversation)), channels
        )
