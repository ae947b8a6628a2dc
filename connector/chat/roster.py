"""Who is online, by topic: the index routing and presence read instead of every agent.

Routing asks "who may be offered a chat of these topics" and presence "who must hear
this" many times per chat; answering from every agent in the Directory made a chat's
set-up cost grow with the agents configured and connected (docs/performance.md). The
`Roster` keeps, per topic, the online agents and the online Available ones, and is told
of every change that moves an agent between them: a console connecting or closing, a
status change, a reload from another process (engine.py), and once a second the whole
of it is rebuilt from presence and the Directory (an agent's topics edited in CRM).

It only narrows who is looked at: `routing`'s pure functions still decide, from each
agent's live presence, so an agent listed here a moment too long is filtered out there.

```python
roster.note("ann", frozenset({"sales"}), online=True, available=True)
roster.available_for(frozenset({"sales", "support"}))   # {"ann"}
```

Not thread-safe: the engine lock is held around every call.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from connector.chat.model import AgentPresence, AgentStatus
from connector.chat.ports import DirectoryLike

__all__ = ["Roster"]


class Roster:
    """Online agents by topic, and which of them are Available."""

    def __init__(self) -> None:
        # Online agent -> the topics and availability it is filed under.
        self._filed: dict[str, tuple[frozenset[str], bool]] = {}
        self._online: dict[str, set[str]] = {}  # topic -> online agents
        self._available: dict[str, set[str]] = {}  # topic -> online, Available agents

    def note(
        self, agent_id: str, topic_ids: frozenset[str] | None, *, online: bool, available: bool
    ) -> None:
        """File the agent as they are now; `topic_ids` None (no agent profile) or
        `online` false takes them out."""
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
        for agent_id, presence in agents.items():
            if presence.online:
                self.note_presence(agent_id, presence, directory)

    def online(self) -> list[str]:
        """Every online agent with a profile."""
        return list(self._filed)

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
