"""The CRM records a chat is linked to, changed from the console's Contact panel: link
one of the contacts matching the visitor, or unpair the contact (docs/agent-workspace.md).

The web layer checks the record (connector.crm.contact_matches); these actions change the
conversation under the engine's lock and tell the chat's agents (`chat.updated`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from connector.chat.actions.conversations import (
    agent_conversation,
    do_set_regarding,
    publish_chat_updated,
)
from connector.chat.errors import ChatEnded, ChatInvalid
from connector.chat.model import ConversationKind
from connector.crm.regarding import Regarding

if TYPE_CHECKING:
    from connector.chat.engine import ChatEngine

__all__ = ["do_link_contact", "do_unpair_contact"]


def do_link_contact(
    engine: ChatEngine, agent_id: str, conversation_id: str, contact: Regarding
) -> None:
    """Make `contact` (checked by the caller) the chat's contact and what it regards."""
    do_set_regarding(
        engine,
        agent_id,
        conversation_id,
        contact.to_dict(),
        contact={"id": contact.id, "name": contact.name},
    )


def do_unpair_contact(engine: ChatEngine, agent_id: str, conversation_id: str) -> None:
    """Take the contact off the chat (and off its regarding when that is the contact).

    Raises ChatInvalid for a chat with no contact, ChatEnded once it is written to CRM.
    """
    with engine.changing():
        conversation = agent_conversation(engine, agent_id, conversation_id)
        if conversation.kind is not ConversationKind.VISITOR or conversation.contact is None:
            raise ChatInvalid("This chat has no contact to unpair.")
        if conversation.finished or conversation.conversation_id in engine.finishing:
            raise ChatEnded("This chat is already written to CRM.")
        regarding = conversation.regarding or {}
        # A case or lead the chat regards stays: only the contact link itself goes.
        if regarding.get("table") == "contact" and regarding.get("id") == conversation.contact.get(
            "id"
        ):
            conversation.regarding = None
        conversation.contact = None
        engine.state.save_conversation(conversation)
        publish_chat_updated(engine, conversation, skip=set())
