"""Which disposition closes a chat: the check behind `chat.end` (docs/agent-workspace.md).

A chat's list is its topics' lists (`crmchat_topic.crmchat_dispositions`): the topic the
visitor chose, else every topic of its widget, the same topics that route it. A chat whose
topics define none ends as before; one with a list ends only with one of its entries.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING

from connector.chat.actions.conversations import routing_topics
from connector.chat.errors import ChatDispositionRequired
from connector.chat.model import Conversation, ConversationKind
from connector.chat.ports import TopicLike
from connector.crm.dispositions import merged_dispositions

if TYPE_CHECKING:
    from connector.chat.engine import ChatEngine

__all__ = ["check_disposition", "topic_dispositions"]


def topic_dispositions(
    topic_ids: Iterable[str], topics: Mapping[str, TopicLike]
) -> tuple[str, ...]:
    """The closing choices of a chat routed by `topic_ids` (in topic id order)."""
    return merged_dispositions(
        topics[topic_id].dispositions for topic_id in sorted(topic_ids) if topic_id in topics
    )


def check_disposition(
    engine: ChatEngine, conversation: Conversation, disposition: str | None
) -> str | None:
    """The disposition to store on an agent's end of `conversation`, or None when its
    topics ask for none.

    Raises ChatDispositionRequired when the topics have a list and `disposition` is
    missing or not on it (compared after trimming, exactly as the admin wrote it).
    """
    if conversation.kind is ConversationKind.AGENT:
        return None
    choices = topic_dispositions(routing_topics(engine, conversation), engine.directory.topics())
    if not choices:
        return None
    wanted = " ".join((disposition or "").split())
    if wanted not in choices:
        raise ChatDispositionRequired(
            "Choose how this chat ended (a disposition) before closing it."
            if not wanted
            else "That disposition is not one of this topic's."
        )
    return wanted
