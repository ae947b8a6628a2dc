"""Small in-memory stand-ins for the CRM side of the live chat (Directory, Outbox).

They hold the real record types of `connector.crm.directory`, so the engine sees exactly
what it sees in production, minus Dataverse. The world:

- topics Sales and Support;
- widget SHOP (Sales), widget HELP (Support), widget OFF (Sales, disabled);
- agents Ann (Sales), Bob (Sales + Support), Cid (Support);
- snippets #hello# and #Thanks#;
- labels VIP and Billing; chat switched on for the organisation (`chat_on`).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from connector.chat.hub import Subscriber
from connector.crm.design import WidgetDesign
from connector.crm.directory import (
    AgentProfile,
    LabelRecord,
    SnippetRecord,
    TopicRecord,
    WidgetRecord,
)
from connector.services import services_of

SALES = "10000000-0000-0000-0000-000000000001"
SUPPORT = "10000000-0000-0000-0000-000000000002"
SHOP = "20000000-0000-0000-0000-000000000001"
HELP = "20000000-0000-0000-0000-000000000002"
OFF = "20000000-0000-0000-0000-000000000003"
ANN = "30000000-0000-0000-0000-000000000001"
BOB = "30000000-0000-0000-0000-000000000002"
CID = "30000000-0000-0000-0000-000000000003"
ANN_USER = "40000000-0000-0000-0000-000000000001"
BOB_USER = "40000000-0000-0000-0000-000000000002"
CID_USER = "40000000-0000-0000-0000-000000000003"
NOBODY_USER = "40000000-0000-0000-0000-000000000009"
VIP = "50000000-0000-0000-0000-000000000001"
BILLING = "50000000-0000-0000-0000-000000000002"

FIELDS = {"firstname": "Vera", "lastname": "Visitor", "email": "vera@example.com"}


def _agent(agent_id: str, user_id: str, name: str, *topics: str) -> AgentProfile:
    return AgentProfile(
        agent_id=agent_id,
        user_id=user_id,
        name=name,
        email=f"{name.lower()}@example.com",
        phone="",
        image=None,
        topic_ids=frozenset(topics),
    )


class FakeDirectory:
    """The Directory's read interface over fixed records; counts nothing, reads nothing."""

    def __init__(self, *, rating: bool = True) -> None:
        design = WidgetDesign(rating=rating)
        self._agents = {
            a.agent_id: a
            for a in (
                _agent(ANN, ANN_USER, "Ann", SALES),
                _agent(BOB, BOB_USER, "Bob", SALES, SUPPORT),
                _agent(CID, CID_USER, "Cid", SUPPORT),
            )
        }
        self._widgets = {
            SHOP: WidgetRecord(SHOP, "Shop", True, design, frozenset({SALES})),
            HELP: WidgetRecord(HELP, "Help", True, design, frozenset({SUPPORT})),
            OFF: WidgetRecord(OFF, "Off", False, design, frozenset({SALES})),
        }
        self._topics = {
            SALES: TopicRecord(SALES, "Sales", "#ff0000"),
            SUPPORT: TopicRecord(SUPPORT, "Support", "#00ff00"),
        }
        self._snippets = {
            "hello": SnippetRecord("hello", "Hello! How can I help you today?"),
            "thanks": SnippetRecord("Thanks", "Thank you for chatting with us."),
        }
        self._labels = {
            VIP: LabelRecord(VIP, "VIP", "#aa0000"),
            BILLING: LabelRecord(BILLING, "Billing", "#0000aa"),
        }
        self.chat_on = True
        self.subscription_on = True
        self.org_masking_rules: tuple[str, ...] = ()

    def set_widget(self, widget: WidgetRecord) -> None:
        """Replace (or add) a widget, e.g. with another design or topics."""
        self._widgets[widget.widget_id] = widget

    def set_agent(self, agent: AgentProfile) -> None:
        """Replace an agent, e.g. with another capacity."""
        self._agents[agent.agent_id] = agent

    def set_topic(self, topic: TopicRecord) -> None:
        """Replace (or add) a topic, e.g. with dispositions."""
        self._topics[topic.topic_id] = topic

    def agents(self) -> list[AgentProfile]:
        return list(self._agents.values())

    def agent(self, agent_id: str) -> AgentProfile | None:
        return self._agents.get(agent_id)

    def agent_for_user(self, user_id: str) -> AgentProfile | None:
        return next((a for a in self._agents.values() if a.user_id == user_id), None)

    def widget(self, widget_id: str) -> WidgetRecord | None:
        return self._widgets.get(widget_id)

    def topics(self) -> dict[str, TopicRecord]:
        return dict(self._topics)

    def snippets(self) -> dict[str, SnippetRecord]:
        return dict(self._snippets)

    def labels(self) -> dict[str, LabelRecord]:
        return dict(self._labels)

    def chat_enabled(self) -> bool:
        return self.chat_on and self.subscription_on

    def subscribed(self) -> bool:
        return self.subscription_on

    def masking_rules(self) -> tuple[str, ...]:
        return self.org_masking_rules


class FakeOutbox:
    """Keeps enqueued items by key; a second enqueue of a key changes nothing."""

    def __init__(self) -> None:
        self.items: dict[str, tuple[str, dict[str, Any]]] = {}
        self.enqueue_calls = 0

    def enqueue(self, kind: str, key: str, payload: dict[str, Any]) -> None:
        self.enqueue_calls += 1
        self.items.setdefault(key, (kind, payload))


class Inbox:
    """A subscriber that records the frames it is sent, as dicts."""

    def __init__(self) -> None:
        import json

        self.frames: list[dict[str, Any]] = []
        self.subscriber = Subscriber(lambda text: self.frames.append(json.loads(text)))

    def of_type(self, type_: str) -> list[dict[str, Any]]:
        return [f for f in self.frames if f["type"] == type_]

    def types(self) -> list[str]:
        return [f["type"] for f in self.frames]

    def last(self, type_: str) -> dict[str, Any]:
        found = self.of_type(type_)
        assert found, f"no {type_} frame in {self.types()}"
        return found[-1]

    def clear(self) -> None:
        self.frames.clear()

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return iter(self.frames)


def ensure_user(app: Any, user_id: str, roles: frozenset[str]) -> None:
    """Make `user_id` a system user holding `roles` (by name) in `app`'s embedded Dataverse.

    The service re-reads a signed-in user's roles from Dataverse (at most a minute old), so
    a token made for a test names a user that must exist there.
    """
    from connector.dataverse_local import add_user

    store = services_of(app).standin.store
    role_ids = [r.id for r in store.schema.roles if r.name in roles]
    add_user(store, domain_name=f"{user_id}@test.invalid", user_id=user_id, role_ids=role_ids)


# The service secret the CRM-writing tests derive chat activity ids with.
SERVICE_SECRET = b"test-service-secret"


def write_chat(client: Any, chat: Any) -> str:
    """`write_chat_activity` as the service does it, with `client` as the service's user."""
    from connector.crm.chat_activity import write_chat_activity

    if id(client) not in _USER_OF_CLIENT:
        _USER_OF_CLIENT[id(client)] = client.who_am_i().user_id
    return write_chat_activity(
        client, chat, secret=SERVICE_SECRET, service_user_id=_USER_OF_CLIENT[id(client)]
    )


_USER_OF_CLIENT: dict[int, str] = {}


def prime_writer(client: Any) -> None:
    """Ask `client`'s WhoAmI now, so `write_chat` sends only the writes later."""
    _USER_OF_CLIENT[id(client)] = client.who_am_i().user_id


def activity_of(chat: Any) -> str:
    """The activity id the service gives `chat`."""
    from connector.crm.chat_activity import chat_activity_id

    return chat_activity_id(chat.conversation_id, SERVICE_SECRET)
