"""CRM Chat's configuration, read from Dataverse and cached: agents, topics, widgets,
snippets, labels, and the organisation-wide chat switch.

One refresh is six requests (agents and widgets with their topics through ``$expand``
of the N:N navigations, topics, snippets, labels, and the settings record's
`crmchat_chatenabled`), so the chat engine's many reads cost Dataverse nothing between
refreshes. Only active rows (statecode 0) count; an agent's or widget's
link to an inactive topic is ignored.

Refreshing happens on a background thread (`start()`), every `ttl_secs`: readers only
ever see the last complete snapshot and never wait on a Dataverse request, so a slow or
timing-out Dataverse cannot stall a chat. `start()` loads the first snapshot before the
service answers; only a reader that comes before any snapshot exists (start-up failed, or
`start()` was never called) loads it itself, and gets the error if that fails. A refresh
that fails keeps the old snapshot (logged) and is tried again after `RETRY_SECS`.
`invalidate()` refreshes at once on the calling thread (an admin request that just saved a
change), while readers go on with the old snapshot until the new one is complete.

A widget whose design JSON is broken gets the default design (logged); it never keeps the
other widgets from loading.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from connector.crm import tables
from connector.crm.design import DesignError, WidgetDesign, checked_color, parse_design
from connector.crm.tables import SETTINGS_ID
from connector.dataverse import DataverseClient, DataverseError, NotFound
from connector.dataverse.odata import eq, guid

__all__ = [
    "CONFIG_TTL_SECS",
    "AgentProfile",
    "Directory",
    "LabelRecord",
    "SnippetRecord",
    "TopicRecord",
    "WidgetRecord",
    "record_color",
]

log = logging.getLogger(__name__)

# How long configuration read from Dataverse is served before it is read again.
CONFIG_TTL_SECS = 30.0
# After a failed refresh, how long the old snapshot is served before trying again.
RETRY_SECS = 5.0
# A topic without a colour of its own.
DEFAULT_TOPIC_COLOR = "#616161"

_ACTIVE = eq("statecode", 0)


@dataclass(frozen=True)
class AgentProfile:
    """An agent (`crmchat_agent`) and the topics they answer."""

    agent_id: str
    user_id: str  # the systemuserid the agent signs in as
    name: str
    email: str
    phone: str
    image: str | None  # data URL
    topic_ids: frozenset[str]


@dataclass(frozen=True)
class TopicRecord:
    topic_id: str
    name: str
    color: str


@dataclass(frozen=True)
class WidgetRecord:
    widget_id: str
    name: str
    enabled: bool
    design: WidgetDesign
    topic_ids: frozenset[str]
    # Signs the host site's identity tokens (HS256); None: the site cannot identify visitors.
    secret: str | None = None
    # The widget's owner as an `ownerid` bind ("/systemusers(<id>)" or "/teams(<id>)"): who
    # the admin made responsible for the widget owns the records its messages become.
    owner: str | None = None


@dataclass(frozen=True)
class LabelRecord:
    """A label agents put on chats (`crmchat_label`), managed by admins."""

    label_id: str
    name: str
    color: str


@dataclass(frozen=True)
class SnippetRecord:
    name: str
    text: str


@dataclass(frozen=True)
class _Snapshot:
    agents: dict[str, AgentProfile] = field(default_factory=dict)  # by agent id
    by_user: dict[str, AgentProfile] = field(default_factory=dict)  # by systemuserid
    topics: dict[str, TopicRecord] = field(default_factory=dict)
    widgets: dict[str, WidgetRecord] = field(default_factory=dict)
    snippets: dict[str, SnippetRecord] = field(default_factory=dict)  # by lower-case name
    labels: dict[str, LabelRecord] = field(default_factory=dict)
    chat_enabled: bool = True
    subscribed: bool = True


def _text(row: dict[str, Any], name: str) -> str:
    value = row.get(name)
    return value if isinstance(value, str) else ""


def _owner_bind(row: dict[str, Any]) -> str | None:
    """The row's owner (`_owninguser_value` or `_owningteam_value`) as an `ownerid` bind."""
    user, team = _text(row, "_owninguser_value"), _text(row, "_owningteam_value")
    if user:
        return tables.bind(tables.SYSTEMUSERS, user)
    if team:
        return tables.bind(tables.TEAMS, team)
    return None


def _colored_rows(
    client: DataverseClient, table: str, id_column: str
) -> Iterator[tuple[str, str, str]]:
    """(lower-case id, name, colour) of each active row of a named, coloured table.

    A colour written straight through the Web API is not checked there (Dataverse has no
    such rule), so one that is not `#rgb`/`#rrggbb` is ignored here and logged.
    """
    for row in client.list(
        table, select=[id_column, "crmchat_name", "crmchat_color"], filter=_ACTIVE
    ):
        record_id = str(row[id_column]).lower()
        yield record_id, _text(row, "crmchat_name"), record_color(table, record_id, row)


def record_color(table: str, record_id: str, row: dict[str, Any]) -> str:
    """A topic's or label's `crmchat_color`, checked; the default (logged) when invalid."""
    raw = row.get("crmchat_color")
    if raw is None or raw == "":
        return DEFAULT_TOPIC_COLOR
    color = checked_color(raw)
    if color is None:
        log.warning(
            "%s %s has the colour %r, which is not #rgb or #rrggbb; using %s",
            table,
            record_id,
            str(raw)[:20],
            DEFAULT_TOPIC_COLOR,
        )
        return DEFAULT_TOPIC_COLOR
    return color


def _normal_id(value: str) -> str | None:
    try:
        return guid(value)
    except ValueError:
        return None


class Directory:
    """Cached view of agents (with topics), topics, widgets (with topics), snippets.

    Thread-safe. Readers get immutable records; lists and dicts returned are copies.
    Raises `DataverseError` only when the very first read fails.
    """

    def __init__(
        self,
        client: DataverseClient,
        *,
        ttl_secs: float = CONFIG_TTL_SECS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._client = client
        self._ttl_secs = ttl_secs
        self._clock = clock
        self._snapshot: _Snapshot | None = None
        self._loaded_at: float | None = None  # clock() when the snapshot was read
        self._next_refresh = float("-inf")
        self._load_lock = threading.Lock()  # one Dataverse read of the configuration at a time
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._listeners: list[Callable[[], None]] = []

    # ----- reads ------------------------------------------------------------------------

    def agents(self) -> list[AgentProfile]:
        """All active agents, by name."""
        return sorted(
            self._current().agents.values(), key=lambda a: (a.name.casefold(), a.agent_id)
        )

    def agent(self, agent_id: str) -> AgentProfile | None:
        """The active agent with this id, or None."""
        key = _normal_id(agent_id)
        return None if key is None else self._current().agents.get(key)

    def agent_for_user(self, user_id: str) -> AgentProfile | None:
        """The active agent profile of system user `user_id`, or None."""
        key = _normal_id(user_id)
        return None if key is None else self._current().by_user.get(key)

    def widget(self, widget_id: str) -> WidgetRecord | None:
        """The active widget with this id, or None."""
        key = _normal_id(widget_id)
        return None if key is None else self._current().widgets.get(key)

    def topics(self) -> dict[str, TopicRecord]:
        """Active topics by id."""
        return dict(self._current().topics)

    def snippets(self) -> dict[str, SnippetRecord]:
        """Active snippets by lower-case name."""
        return dict(self._current().snippets)

    def labels(self) -> dict[str, LabelRecord]:
        """Active labels by id."""
        return dict(self._current().labels)

    def chat_enabled(self) -> bool:
        """The organisation-wide switch (`crmchat_settings.crmchat_chatenabled`), off too
        while unsubscribed; on when no settings record exists or the column is unset."""
        current = self._current()
        return current.chat_enabled and current.subscribed

    def subscribed(self) -> bool:
        """The subscription state (`crmchat_settings.crmchat_subscribed`); on when unset."""
        return self._current().subscribed

    def age_secs(self) -> float | None:
        """Seconds since the snapshot readers see was read; None before the first."""
        loaded_at = self._loaded_at
        return None if loaded_at is None else max(0.0, self._clock() - loaded_at)

    # ----- refresh ----------------------------------------------------------------------

    def start(self) -> None:
        """Load the first snapshot (best effort), then refresh in the background."""
        if self._thread is not None:
            return
        self.refresh()
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="crm-directory", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def invalidate(self) -> None:
        """Read everything again now, on this thread (after an admin changed something)."""
        self.refresh()

    def refresh(self) -> bool:
        """Read the configuration and swap it in; False (logged) when Dataverse failed."""
        with self._load_lock:
            try:
                fresh = self._load()
            except DataverseError:
                log.warning(
                    "reading CRM Chat's configuration failed; serving the last copy", exc_info=True
                )
                self._next_refresh = self._clock() + min(RETRY_SECS, self._ttl_secs)
                return False
            self._swap(fresh)
            return True

    def _swap(self, fresh: _Snapshot) -> None:
        now = self._clock()
        self._snapshot = fresh
        self._loaded_at = now
        self._next_refresh = now + self._ttl_secs

    def _run(self) -> None:
        while not self._stop.is_set():
            # Woken early by a reader that found the snapshot stale (a test's clock).
            self._wake.wait(max(0.0, min(self._next_refresh - self._clock(), self._ttl_secs)))
            self._wake.clear()
            if self._stop.is_set():
                return
            if self._clock() >= self._next_refresh and self.refresh():
                self._tell_listeners()

    def on_refresh(self, listener: Callable[[], None]) -> None:
        """Call `listener` after each background refresh (e.g. the engine re-announcing
        availability, so a widget switched off in CRM disappears from open pages)."""
        self._listeners.append(listener)

    def _tell_listeners(self) -> None:
        for listener in self._listeners:
            try:
                listener()
            except Exception:
                log.exception("a Directory refresh listener failed")

    def _current(self) -> _Snapshot:
        snapshot = self._snapshot
        if snapshot is not None:
            if self._clock() >= self._next_refresh:
                self._wake.set()
            return snapshot
        # No snapshot yet: nothing to serve, so this reader loads it (errors reach it).
        with self._load_lock:
            snapshot = self._snapshot
            if snapshot is None:
                snapshot = self._load()
                self._swap(snapshot)
            return snapshot

    def _load(self) -> _Snapshot:
        client = self._client
        topics = {
            topic_id: TopicRecord(topic_id=topic_id, name=name, color=color)
            for topic_id, name, color in _colored_rows(client, tables.TOPICS, "crmchat_topicid")
        }

        agents: dict[str, AgentProfile] = {}
        by_user: dict[str, AgentProfile] = {}
        for row in client.list(
            tables.AGENTS,
            select=[
                "crmchat_agentid",
                "crmchat_name",
                "_crmchat_systemuserid_value",
                "crmchat_email",
                "crmchat_phone",
                "crmchat_image",
            ],
            filter=_ACTIVE,
            expand=f"{tables.AGENT_TOPICS}($select=crmchat_topicid)",
        ):
            agent_id = str(row["crmchat_agentid"]).lower()
            user_id = _text(row, "_crmchat_systemuserid_value").lower()
            topic_rows = self._related(row, tables.AGENTS, agent_id, tables.AGENT_TOPICS)
            agent = AgentProfile(
                agent_id=agent_id,
                user_id=user_id,
                name=_text(row, "crmchat_name"),
                email=_text(row, "crmchat_email"),
                phone=_text(row, "crmchat_phone"),
                image=_text(row, "crmchat_image") or None,
                topic_ids=self._topic_ids(topic_rows, topics),
            )
            agents[agent_id] = agent
            if user_id:
                by_user[user_id] = agent

        widgets: dict[str, WidgetRecord] = {}
        for row in client.list(
            tables.WIDGETS,
            select=[
                "crmchat_widgetid",
                "crmchat_name",
                "crmchat_enabled",
                "crmchat_design",
                "crmchat_secret",
                "_owninguser_value",
                "_owningteam_value",
            ],
            filter=_ACTIVE,
            expand=f"{tables.WIDGET_TOPICS}($select=crmchat_topicid)",
        ):
            widget_id = str(row["crmchat_widgetid"]).lower()
            topic_rows = self._related(row, tables.WIDGETS, widget_id, tables.WIDGET_TOPICS)
            widgets[widget_id] = WidgetRecord(
                widget_id=widget_id,
                name=_text(row, "crmchat_name"),
                # The column's default is Yes; an unset value means the admin never said no.
                enabled=row.get("crmchat_enabled") is not False,
                design=_design_of(widget_id, row.get("crmchat_design")),
                topic_ids=self._topic_ids(topic_rows, topics),
                secret=_text(row, "crmchat_secret") or None,
                owner=_owner_bind(row),
            )

        snippets: dict[str, SnippetRecord] = {}
        # The name is the table's alternate key, so Dataverse keeps it unique; should two
        # rows still differ only in case or spacing, the oldest keeps the name: a later
        # row (anyone's) never takes over a snippet everyone uses.
        for row in client.list(
            tables.SNIPPETS,
            select=["crmchat_name", "crmchat_text"],
            filter=_ACTIVE,
            orderby=["createdon asc", "crmchat_snippetid asc"],
        ):
            name = _text(row, "crmchat_name").strip()
            if name:
                snippets.setdefault(
                    name.lower(), SnippetRecord(name=name, text=_text(row, "crmchat_text"))
                )

        labels = {
            label_id: LabelRecord(label_id=label_id, name=name, color=color)
            for label_id, name, color in _colored_rows(client, tables.LABELS, "crmchat_labelid")
        }

        switches = self._switches()
        return _Snapshot(
            agents=agents,
            by_user=by_user,
            topics=topics,
            widgets=widgets,
            snippets=snippets,
            labels=labels,
            chat_enabled=switches.get("crmchat_chatenabled") is not False,
            subscribed=switches.get("crmchat_subscribed") is not False,
        )

    def _switches(self) -> dict[str, Any]:
        """The settings record's switches; {} without a record. Unset (a record saved before
        the column existed) counts as on, like the columns' defaults."""
        try:
            return self._client.retrieve(
                tables.SETTINGS, SETTINGS_ID, select=["crmchat_chatenabled", "crmchat_subscribed"]
            )
        except NotFound:
            return {}

    def _related(
        self, row: dict[str, Any], entity_set: str, record_id: str, navigation: str
    ) -> Iterable[dict[str, Any]]:
        """The expanded rows of `navigation`, following a nested next link if Dataverse
        pages the expansion instead of inlining it."""
        inline = row.get(navigation)
        if isinstance(inline, list) and f"{navigation}@odata.nextLink" not in row:
            return inline
        return self._client.list_related(
            entity_set, record_id, navigation, select=["crmchat_topicid"]
        )

    @staticmethod
    def _topic_ids(
        rows: Iterable[dict[str, Any]], topics: dict[str, TopicRecord]
    ) -> frozenset[str]:
        ids = (str(r.get("crmchat_topicid") or "").lower() for r in rows)
        return frozenset(topic_id for topic_id in ids if topic_id in topics)


def _design_of(widget_id: str, text: object) -> WidgetDesign:
    try:
        return parse_design(text if isinstance(text, str) else None)
    except DesignError as error:
        log.error("widget %s: %s; showing the default design", widget_id, error)
        return WidgetDesign()
