"""CRM Chat's configuration, read from Dataverse and cached: agents, topics, widgets,
snippets, labels, and the organisation-wide chat switch.

One refresh is six requests (agents and widgets with their topics through ``$expand``
of the N:N navigations, topics, snippets, labels, and the settings record's
`crmchat_chatenabled`), so the chat engine's many reads cost Dataverse nothing between
refreshes. Only active rows (statecode 0) count; an agent's or widget's
link to an inactive topic is ignored.

A refresh reads only what changed: each table answers the rows modified after the newest
`modifiedon` held (`$filter=modifiedon gt …`, or in that same second but not already
read), so a quiet refresh answers five empty lists. Every `LISTING_EVERY`th refresh also
lists each table's active ids with `versionnumber` and topic links, which finds deleted
rows, links added or removed, and a second edit of a row within one second. The first
snapshot and `invalidate()` read everything. (Dataverse change tracking would also report
deletions, but needs each table's "Track changes" flag, which cannot be turned off again,
and the embedded Dataverse has no delta links; docs/performance.md.)

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
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from uuid import UUID

from connector.crm import tables
from connector.crm.design import DesignError, WidgetDesign, checked_color, parse_design
from connector.crm.dispositions import parse_dispositions
from connector.crm.masking import stored_rules
from connector.crm.tables import SETTINGS_ID
from connector.dataverse import DataverseClient, DataverseError, NotFound
from connector.dataverse.odata import and_, eq, ge, gt, guid, ne, or_

__all__ = [
    "CONFIG_TTL_SECS",
    "DEFAULT_ANSWER_SECS",
    "DEFAULT_WRAPUP_SECS",
    "DEFAULT_CAPACITY",
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
# An agent record without a capacity, and a topic without an answer time limit: three
# chats at once is what contact centres start agents on; 30 s rings about six times.
DEFAULT_CAPACITY = 3
DEFAULT_ANSWER_SECS = 30
# A topic without a wrap-up time limit: five minutes to pick a chat's disposition after the
# visitor ended it (actions/finishing.py says why).
DEFAULT_WRAPUP_SECS = 300
# The columns' ranges in solution/customizations.xml (Dataverse refuses values outside).
CAPACITY_RANGE = (1, 20)
ANSWER_SECS_RANGE = (5, 600)
WRAPUP_SECS_RANGE = (30, 3600)

# Every how many refreshes each table also lists its active ids (with versionnumber and
# topic links): how late a deletion, a link change or a second edit within one second is
# seen, at most (4 x 30 s: two minutes).
LISTING_EVERY = 4
# Rows of one second left out of the next change query by id; past this many (a bulk
# import), that second is simply read again.
MAX_EXCLUDED_IDS = 20

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
    # Visitor chats routing gives the agent at once (`crmchat_capacity`; actions/queues.py).
    capacity: int = DEFAULT_CAPACITY


@dataclass(frozen=True)
class TopicRecord:
    topic_id: str
    name: str
    color: str
    dispositions: tuple[str, ...] = ()  # the closing choices (connector/crm/dispositions.py)
    # How long an offer rings for one agent (`crmchat_answersecs`; actions/queues.py).
    answer_secs: int = DEFAULT_ANSWER_SECS
    # How long a chat the visitor ended waits for its disposition (`crmchat_wrapupsecs`).
    wrapup_secs: int = DEFAULT_WRAPUP_SECS
    # At most this many of the topic's chats per agent at once, within the agent's own
    # capacity; None: only the agent's (`crmchat_maxperagent`; actions/queues.py).
    max_per_agent: int | None = None
    # A chat in wrap-up keeps its place of the agent's capacity (`crmchat_blockwrapup`;
    # empty: yes, Omnichannel's default "Always block").
    block_wrapup: bool = True


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
    masking_rules: tuple[str, ...] = ()


def _text(row: dict[str, Any], name: str) -> str:
    value = row.get(name)
    return value if isinstance(value, str) else ""


def _whole(row: dict[str, Any], name: str, default: int, bounds: tuple[int, int]) -> int:
    """A whole number column, the default when empty, kept within the column's range."""
    value = row.get(name)
    if not isinstance(value, int) or isinstance(value, bool):
        return default
    return min(max(value, bounds[0]), bounds[1])


def _limit(row: dict[str, Any], name: str, bounds: tuple[int, int]) -> int | None:
    """An optional whole number column: None when empty, else kept within its range."""
    if row.get(name) is None:
        return None
    return _whole(row, name, bounds[0], bounds)


def _owner_bind(row: dict[str, Any]) -> str | None:
    """The row's owner (`_owninguser_value` or `_owningteam_value`) as an `ownerid` bind."""
    user, team = _text(row, "_owninguser_value"), _text(row, "_owningteam_value")
    if user:
        return tables.bind(tables.SYSTEMUSERS, user)
    if team:
        return tables.bind(tables.TEAMS, team)
    return None


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


@dataclass(frozen=True)
class _Source:
    """One table the configuration is read from: its columns and its topic links."""

    entity_set: str
    id_column: str
    columns: tuple[str, ...]
    navigation: str = ""  # the N:N navigation to topics, expanded with each row

    @property
    def expand(self) -> str | None:
        return f"{self.navigation}($select=crmchat_topicid)" if self.navigation else None


# statecode, modifiedon and versionnumber with every row: what the refresh by changes needs
_TRACKED = ("statecode", "modifiedon", "versionnumber")
_SOURCES = (
    _Source(
        tables.TOPICS,
        "crmchat_topicid",
        (
            "crmchat_name",
            "crmchat_color",
            "crmchat_dispositions",
            "crmchat_answersecs",
            "crmchat_wrapupsecs",
            "crmchat_maxperagent",
            "crmchat_blockwrapup",
        ),
    ),
    _Source(
        tables.AGENTS,
        "crmchat_agentid",
        (
            "crmchat_name",
            "_crmchat_systemuserid_value",
            "crmchat_email",
            "crmchat_phone",
            "crmchat_image",
            "crmchat_capacity",
        ),
        navigation=tables.AGENT_TOPICS,
    ),
    _Source(
        tables.WIDGETS,
        "crmchat_widgetid",
        (
            "crmchat_name",
            "crmchat_enabled",
            "crmchat_design",
            "crmchat_secret",
            "_owninguser_value",
            "_owningteam_value",
        ),
        navigation=tables.WIDGET_TOPICS,
    ),
    _Source(tables.SNIPPETS, "crmchat_snippetid", ("crmchat_name", "crmchat_text", "createdon")),
    _Source(tables.LABELS, "crmchat_labelid", ("crmchat_name", "crmchat_color")),
)


def _selected(source: _Source) -> list[str]:
    return [source.id_column, *source.columns, *_TRACKED]


def row_id(source: _Source, row: dict[str, Any]) -> str:
    """The row's primary id, lower-case (the Directory's keys)."""
    return str(row[source.id_column]).lower()


@dataclass
class _Rows:
    """The active rows the snapshot was built from, by table and id, and per table the
    newest `modifiedon` held with the ids modified in that very second."""

    by_id: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    marks: dict[str, tuple[datetime, frozenset[str]]] = field(default_factory=dict)

    def copy(self) -> _Rows:
        return _Rows({name: dict(rows) for name, rows in self.by_id.items()}, dict(self.marks))

    def note_marks(self, left: Mapping[str, list[dict[str, Any]]] | None = None) -> None:
        """Take the newest `modifiedon` of each table (its rows, and the rows `left` it
        just now) as the point to read changes after; a table holding none keeps its mark
        (rows modified before then were all read)."""
        for source in _SOURCES:
            newest: datetime | None = None
            ids: set[str] = set()
            seen = list(self.by_id[source.entity_set].values())
            seen += (left or {}).get(source.entity_set, [])
            for row in seen:
                key = row_id(source, row)
                stamp = _stamp(row.get("modifiedon"))
                if stamp is None:
                    continue
                if newest is None or stamp > newest:
                    newest, ids = stamp, {key}
                elif stamp == newest:
                    ids.add(key)
            held = self.marks.get(source.entity_set)
            if newest is not None and (held is None or newest >= held[0]):
                same = ids | (held[1] if held is not None and held[0] == newest else set())
                self.marks[source.entity_set] = (newest, frozenset(same))


def _stamp(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        stamp = datetime.fromisoformat(value)
    except ValueError:
        return None
    return stamp if stamp.tzinfo is not None else None


def _changed_since(source: _Source, mark: tuple[datetime, frozenset[str]]) -> str:
    """`$filter` for rows modified after `mark`: later than its second, or in that second
    but not one of the rows already read from it (`modifiedon` counts whole seconds)."""
    stamp, seen = mark
    if not seen or len(seen) > MAX_EXCLUDED_IDS:
        return ge("modifiedon", stamp)
    others = (ne(source.id_column, UUID(key)) for key in sorted(seen))
    same_second = and_(eq("modifiedon", stamp), *others)
    return or_(gt("modifiedon", stamp), same_second)


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
        self._rows: _Rows | None = None  # what the snapshot was built from
        self._changes_read = 0  # refreshes by changes, to list the ids every LISTING_EVERY

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

    def masking_rules(self) -> tuple[str, ...]:
        """The organisation's masking rules (`crmchat_settings.crmchat_maskingrules`), for
        every widget and channel; () when none are set."""
        return self._current().masking_rules

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
        self.refresh(everything=True)

    def refresh(self, *, everything: bool = False) -> bool:
        """Read what changed (with `everything`, all of it) and swap the new snapshot in;
        False (logged) when Dataverse failed."""
        with self._load_lock:
            try:
                fresh = self._load() if everything else self._load_changes()
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
        """Everything read afresh (the first snapshot, `invalidate()`). Inactive rows are
        read too (configuration tables hold few): the newest change of each table, even a
        deactivation, is where the next refresh by changes starts."""
        rows = _Rows()
        left: dict[str, list[dict[str, Any]]] = {}
        for source in _SOURCES:
            held = rows.by_id[source.entity_set] = {}
            for row in self._client.list(
                source.entity_set, select=_selected(source), expand=source.expand
            ):
                if row.get("statecode") == 0:
                    held[row_id(source, row)] = row
                else:
                    left.setdefault(source.entity_set, []).append(row)
        rows.note_marks(left)
        return self._build(rows)

    def _load_changes(self) -> _Snapshot:
        """The snapshot brought up to date by reading only what changed since the last one.

        Each table answers its rows modified after the newest `modifiedon` already held
        (active or not: a deactivated row leaves); every `LISTING_EVERY`th time, each table
        also lists its active ids with their `versionnumber` and topic links, which finds
        deleted rows, links added or removed (an association changes neither record's
        `modifiedon`), and any edit made in the same second as the newest one held.
        """
        rows = self._rows
        if rows is None:
            return self._load()
        rows = rows.copy()
        client = self._client
        left: dict[str, list[dict[str, Any]]] = {}
        for source in _SOURCES:
            mark = rows.marks.get(source.entity_set)
            held = rows.by_id[source.entity_set]
            changed = client.list(
                source.entity_set,
                select=_selected(source),
                filter=_changed_since(source, mark) if mark is not None else None,
                expand=source.expand,
            )
            for row in changed:
                if row.get("statecode") == 0:
                    held[row_id(source, row)] = row
                else:
                    held.pop(row_id(source, row), None)
                    left.setdefault(source.entity_set, []).append(row)
        self._changes_read += 1
        if self._changes_read % LISTING_EVERY == 0:
            for source in _SOURCES:
                self._check_listing(rows, source)
        rows.note_marks(left)
        return self._build(rows)

    def _check_listing(self, rows: _Rows, source: _Source) -> None:
        """Drop rows no longer listed; read the table again when a listed row is unknown
        or newer than the one held; take the listed topic links."""
        held = rows.by_id[source.entity_set]
        listed: dict[str, dict[str, Any]] = {}
        for row in self._client.list(
            source.entity_set,
            select=[source.id_column, "versionnumber"],
            filter=_ACTIVE,
            expand=source.expand,
        ):
            listed[row_id(source, row)] = row
        for gone in held.keys() - listed.keys():
            del held[gone]
        if any(
            key not in held or held[key].get("versionnumber") != row.get("versionnumber")
            for key, row in listed.items()
        ):
            rows.by_id[source.entity_set] = {
                row_id(source, row): row
                for row in self._client.list(
                    source.entity_set,
                    select=_selected(source),
                    filter=_ACTIVE,
                    expand=source.expand,
                )
            }
            return
        if source.expand is not None:
            navigation = source.navigation
            for key, row in listed.items():
                held[key] = {
                    **held[key],
                    navigation: list(self._related(row, source.entity_set, key, navigation)),
                }
                held[key].pop(f"{navigation}@odata.nextLink", None)

    def _build(self, rows: _Rows) -> _Snapshot:
        """The snapshot made of `rows` (which become the rows the next changes apply to)."""
        topics: dict[str, TopicRecord] = {}
        for topic_id, row in rows.by_id[tables.TOPICS].items():
            color = record_color(tables.TOPICS, topic_id, row)
            topics[topic_id] = TopicRecord(
                topic_id,
                _text(row, "crmchat_name"),
                color,
                parse_dispositions(_text(row, "crmchat_dispositions")),
                _whole(row, "crmchat_answersecs", DEFAULT_ANSWER_SECS, ANSWER_SECS_RANGE),
                _whole(row, "crmchat_wrapupsecs", DEFAULT_WRAPUP_SECS, WRAPUP_SECS_RANGE),
                _limit(row, "crmchat_maxperagent", CAPACITY_RANGE),
                row.get("crmchat_blockwrapup") is not False,
            )

        agents: dict[str, AgentProfile] = {}
        by_user: dict[str, AgentProfile] = {}
        for agent_id, row in rows.by_id[tables.AGENTS].items():
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
                capacity=_whole(row, "crmchat_capacity", DEFAULT_CAPACITY, CAPACITY_RANGE),
            )
            agents[agent_id] = agent
            if user_id:
                by_user[user_id] = agent

        widgets: dict[str, WidgetRecord] = {}
        for widget_id, row in rows.by_id[tables.WIDGETS].items():
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
        oldest_first = sorted(
            rows.by_id[tables.SNIPPETS].items(),
            key=lambda item: (_text(item[1], "createdon"), item[0]),
        )
        for _, row in oldest_first:
            name = _text(row, "crmchat_name").strip()
            if name:
                snippets.setdefault(
                    name.lower(), SnippetRecord(name=name, text=_text(row, "crmchat_text"))
                )

        labels: dict[str, LabelRecord] = {}
        for label_id, row in rows.by_id[tables.LABELS].items():
            color = record_color(tables.LABELS, label_id, row)
            labels[label_id] = LabelRecord(label_id, _text(row, "crmchat_name"), color)

        switches = self._switches()
        self._rows = rows
        return _Snapshot(
            agents=agents,
            by_user=by_user,
            topics=topics,
            widgets=widgets,
            snippets=snippets,
            labels=labels,
            chat_enabled=switches.get("crmchat_chatenabled") is not False,
            subscribed=switches.get("crmchat_subscribed") is not False,
            masking_rules=stored_rules(switches.get("crmchat_maskingrules")),
        )

    def _switches(self) -> dict[str, Any]:
        """The settings record's switches; {} without a record. Unset (a record saved before
        the column existed) counts as on, like the columns' defaults."""
        try:
            return self._client.retrieve(
                tables.SETTINGS,
                SETTINGS_ID,
                select=["crmchat_chatenabled", "crmchat_subscribed", "crmchat_maskingrules"],
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
