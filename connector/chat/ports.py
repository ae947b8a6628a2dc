"""What the chat engine needs from the CRM side, as protocols (docs/chat-design.md).

`connector.crm.directory.Directory` and `connector.crm.outbox.Outbox` fit these; tests pass
small fakes. Only the attributes the engine reads are listed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

__all__ = [
    "AgentLike",
    "DesignLike",
    "DirectoryLike",
    "FieldLike",
    "OutboxLike",
    "SnippetLike",
    "TopicLike",
    "WidgetLike",
]


class AgentLike(Protocol):
    @property
    def agent_id(self) -> str: ...
    @property
    def user_id(self) -> str: ...
    @property
    def name(self) -> str: ...
    @property
    def image(self) -> str | None: ...
    @property
    def topic_ids(self) -> frozenset[str]: ...


class TopicLike(Protocol):
    @property
    def topic_id(self) -> str: ...
    @property
    def name(self) -> str: ...
    @property
    def color(self) -> str: ...


class FieldLike(Protocol):
    @property
    def name(self) -> str: ...
    @property
    def label(self) -> str: ...
    @property
    def required(self) -> bool: ...


class DesignLike(Protocol):
    @property
    def fields(self) -> Sequence[FieldLike]: ...
    @property
    def rating(self) -> bool: ...
    @property
    def show_agent_image(self) -> bool: ...

    def display_name(self, fields: Mapping[str, str]) -> str: ...

    def model_dump(self, *, mode: str = ...) -> dict[str, Any]: ...


class WidgetLike(Protocol):
    @property
    def widget_id(self) -> str: ...
    @property
    def name(self) -> str: ...
    @property
    def enabled(self) -> bool: ...
    @property
    def design(self) -> DesignLike: ...
    @property
    def topic_ids(self) -> frozenset[str]: ...


class SnippetLike(Protocol):
    @property
    def name(self) -> str: ...
    @property
    def text(self) -> str: ...


class DirectoryLike(Protocol):
    """The cached CRM configuration (crm/directory.py `Directory`)."""

    def agents(self) -> Sequence[AgentLike]: ...
    def agent(self, agent_id: str) -> AgentLike | None: ...
    def agent_for_user(self, user_id: str) -> AgentLike | None: ...
    def widget(self, widget_id: str) -> WidgetLike | None: ...
    def topics(self) -> Mapping[str, TopicLike]: ...
    def snippets(self) -> Mapping[str, SnippetLike]: ...


class OutboxLike(Protocol):
    """The durable write queue (crm/outbox.py `Outbox`)."""

    def enqueue(self, kind: str, key: str, payload: dict[str, Any]) -> None: ...
