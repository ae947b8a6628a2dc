"""Who is online, by topic: the index routing and presence read instead of every agent
and every page.

Routing asks "who may be offered a chat of these topics" and presence "who must hear
this" many times per chat; answering from every agent in the Directory made a chat's
set-up cost grow with the agents configured and connected (docs/performance.md). The
`Roster` keeps, per topic, the online agents and the online Available ones, and is told
of every change that moves an agent between them: a console connecting or closing, a
status change, a reload from another process (engine.py), and once a second the whole
of it is rebuilt from presence and the Directory (an agent's topics edited in CRM).

It only narrows who is looked at: `routing`'s pure functions still decide, from each
agent's live presence, so an agent listed here a moment too long is filtered out there.

It also files, by topic, the widgets whose visitors were told whether they can chat
(a page said hello on this process or another): when an agent of topic T comes or goes,
only the widgets of T are looked at again (`widgets_for`). And the visitors by the
topics of their widget, for an agent's sign-in snapshot (`visitors_for`: ids that may be
there; the caller checks each against the visitor as it is now). The engine's sweep,
which looks at every widget and visitor once a second, files them all again.

```python
roster.note("ann", frozenset({"sales"}), online=True, available=True)
roster.available_for(frozenset({"sales", "support"}))   # {"ann"}
```

Not thread-safe: the engine lock is held around every call.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from connector.chat.model import AgentPresence, AgentStatus, VisitorPresence
from connector.chat.ports import DirectoryLike

__all__ = ["Roster"]


class Roster:
    """Online agents by topic, and which of them are Available."""

    def __init__(self) -> None:
        # Online agent -> the topics and availability it is filed under.
        self._filed: dict[str, tuple[frozenset[str], bool]] = {}
        self._online: dict[str, set[str]] = {}  # topic -> online agents
        self._available: dict[str, set[str]] = {}  # topic -> online, Available agents
        self._widget_topics: dict[str, frozenset[str]] = {}  # widget -> its topics, filed
        self._widgets: dict[str, set[str]] = {}  # topic -> widgets with visitors told
        self._visitors: dict[str, set[str]] = {}  # topic -> visitors who may be there
        # Online agent -> their row as a snapshot lists it (views.agent_view), made once
        # per change of the agent: a sign-in lists every online agent.
        self.rows: dict[str, dict[str, Any]] = {}

    def note(
        self, agent_id: str, topic_ids: frozenset[str] | None, *, online: bool, available: bool
    ) -> None:
        """File the agent as they are now; `topic_ids` None (no agent profile) or
        `online` false takes them out."""
        self.rows.pop(agent_id, None)
        old = self._filed.pop(agent_id, None)
        if old is not None:
            _drop(self._online, agent_id, old[0])
            if old[1]:
                _drop(self._available, agent_id, old[0])
        if topic_ids is None or not online:
            return
        self._filed[agent_id] = (topic_ids, available)
        _add(self._online, agent_id, topic_ids)
        if available:
            _add(self._available, agent_id, topic_ids)

    def note_presence(
        self, agent_id: str, presence: AgentPresence | None, directory: DirectoryLike
    ) -> None:
        """File the agent from their presence and Directory profile."""
        profile = directory.agent(agent_id)
        online = presence is not None and presence.online
        self.note(
            agent_id,
            profile.topic_ids if profile is not None else None,
            online=online,
            available=online and presence is not None and presence.status is AgentStatus.AVAILABLE,
        )

    def rebuild(self, agents: Mapping[str, AgentPresence], directory: DirectoryLike) -> None:
        """Everything again, from every presence record (the Directory may have changed)."""
        self._filed.clear()
        self._online.clear()
        self._available.clear()
        self.rows.clear()
        for agent_id, presence in agents.items():
            if presence.online:
                self.note_presence(agent_id, presence, directory)

    def note_widget(self, widget_id: str, topic_ids: frozenset[str]) -> None:
        """A page of this widget is open: file the widget under its topics."""
        if self._widget_topics.get(widget_id) == topic_ids:
            return
        _drop(self._widgets, widget_id, self._widget_topics.get(widget_id, frozenset()))
        self._widget_topics[widget_id] = topic_ids
        _add(self._widgets, widget_id, topic_ids)

    def file_widgets(self, widget_ids: Iterable[str], directory: DirectoryLike) -> None:
        """File exactly these widgets (the sweep's full list), with their topics now."""
        self._widget_topics.clear()
        self._widgets.clear()
        for widget_id in widget_ids:
            widget = directory.widget(widget_id)
            self.note_widget(widget_id, widget.topic_ids if widget is not None else frozenset())

    def note_visitor(self, visitor_id: str, topic_ids: frozenset[str]) -> None:
        """A visitor is on a page of a widget with these topics."""
        _add(self._visitors, visitor_id, topic_ids)

    def file_visitors(self, visitors: Iterable[VisitorPresence], directory: DirectoryLike) -> None:
        """File exactly these visitors (every one the engine holds), by their widget now."""
        self._visitors.clear()
        for presence in visitors:
            widget = directory.widget(presence.widget_id)
            if widget is not None:
                self.note_visitor(presence.visitor_id, widget.topic_ids)

    def visitors_for(self, topic_ids: Iterable[str]) -> set[str]:
        """Ids of the visitors who may be on a widget sharing one of the topics."""
        return _union(self._visitors, topic_ids)

    def widgets_for(self, topic_ids: Iterable[str]) -> set[str]:
        """The filed widgets sharing one of the topics."""
        return _union(self._widgets, topic_ids)

    def online(self) -> list[str]:
        """Every online agent with a profile."""
        return list(self._filed)

    def online_count(self) -> int:
        return len(self._filed)

    def online_for(self, topic_ids: Iterable[str]) -> set[str]:
        """The online agents sharing one of the topics, whatever their status."""
        return _union(self._online, topic_ids)

    def available_for(self, topic_ids: Iterable[str]) -> set[str]:
        """The online, Available agents sharing one of the topics."""
        return _union(self._available, topic_ids)


def _add(index: dict[str, set[str]], agent_id: str, topic_ids: frozenset[str]) -> None:
    for topic_id in topic_ids:
        index.setdefault(topic_id, set()).add(agent_id)


def _drop(index: dict[str, set[str]], agent_id: str, topic_ids: frozenset[str]) -> None:
    for topic_id in topic_ids:
        agents = index.get(topic_id)
        if agents is not None:
            agents.discard(agent_id)
            if not agents:
                del index[topic_id]


def _union(index: dict[str, set[str]], topic_ids: Iterable[str]) -> set[str]:
    found: set[str] = set()
    for topic_id in topic_ids:
        found |= index.get(topic_id, set())
    return found
