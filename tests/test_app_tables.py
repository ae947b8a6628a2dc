"""The service finds out which Dynamics 365 tables the organization has (lead, incident,
knowledgearticle) from EntityDefinitions, caches it, tells the console, and refuses a lead
or case where the table is absent: on the embedded Dataverse with and without the apps."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from flask import Flask

from connector.app import create_app, stop_app
from connector.channels.links import find_link
from connector.channels.model import ChannelAccount, ChannelType, EventKind, InboundEvent
from connector.channels.shared import channels_of
from connector.chat.actions import agents
from connector.chat.hub import Subscriber
from connector.chat.model import Conversation
from connector.chat.sessions import AgentSession
from connector.crm.app_tables import APP_TABLES, RETRY_SECS, AppTables
from connector.crm.handshake import SignedInUser
from connector.dataverse.errors import DataverseError
from connector.demo import SAM_AGENT_ID, SAM_USER_ID
from connector.services import services_of
from connector.web.auth import issue_service_token


def _app(tmp_path: Any, monkeypatch: pytest.MonkeyPatch, *, apps: bool) -> Flask:
    monkeypatch.setenv("CRMCHAT_DEMO", "1")
    settings = {"data_dir": tmp_path, "log_level": "WARNING", "embedded_dynamics_apps": apps}
    return create_app(settings, start=False)


@pytest.fixture
def plain_app(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[Flask]:
    app = _app(tmp_path, monkeypatch, apps=False)
    yield app
    stop_app(app)


@pytest.fixture
def dynamics_app(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[Flask]:
    app = _app(tmp_path, monkeypatch, apps=True)
    yield app
    stop_app(app)


def _headers(app: Flask) -> dict[str, str]:
    with app.app_context():
        token = issue_service_token(
            SignedInUser(
                SAM_USER_ID, "Sam Sales", "sam@crmchat.local", frozenset({"CRM Chat Agent"})
            )
        )
    return {"Authorization": f"Bearer {token}"}


def _whatsapp(app: Flask) -> list[ChannelAccount]:
    return [a for a in channels_of(app).accounts.all() if a.channel is ChannelType.WHATSAPP]


def _channel_message(app: Flask, message_id: str) -> Conversation:
    """Pat writes on the demo WhatsApp account; the open chat it lands in."""
    engine = services_of(app).engine
    (account,) = _whatsapp(app)
    event = InboundEvent(
        channel=account.channel,
        account_key=account.key,
        kind=EventKind.MESSAGE,
        person_id="4670002222",
        person_name="Pat Person",
        message_id=message_id,
        text="hello",
        at=datetime.now(UTC),
    )
    channels_of(app).bridge.do_channel_event(account, event)
    (chat,) = [c for c in engine.conversations.values() if c.channel and c.is_open]
    return chat


def _accepted_channel_chat(app: Flask) -> str:
    """A WhatsApp chat Sam has accepted: a visitor chat the console can make records from."""
    engine = services_of(app).engine
    chat = _channel_message(app, "wamid.T1")
    session = AgentSession(Subscriber(lambda text: None), SAM_AGENT_ID)
    agents.do_agent_connect(engine, session)
    agents.do_agent_accept(engine, session, conversation_id=chat.conversation_id)
    return chat.conversation_id


def test_with_the_apps_the_console_is_told_every_table_exists(dynamics_app: Flask) -> None:
    answer = dynamics_app.test_client().get("/api/agent/crm", headers=_headers(dynamics_app))
    assert answer.status_code == 200
    assert answer.get_json() == {
        "tables": {"lead": True, "incident": True, "knowledgearticle": True}
    }


def test_without_the_apps_the_console_is_told_none_exists(plain_app: Flask) -> None:
    client = plain_app.test_client()
    answer = client.get("/api/agent/crm", headers=_headers(plain_app))
    assert answer.get_json() == {
        "tables": {"lead": False, "incident": False, "knowledgearticle": False}
    }
    assert client.get("/api/agent/crm").status_code == 401


def test_without_the_apps_a_lead_or_case_is_refused_clearly_and_a_contact_works(
    plain_app: Flask,
) -> None:
    conversation_id = _accepted_channel_chat(plain_app)
    client, headers = plain_app.test_client(), _headers(plain_app)
    url = f"/api/agent/chats/{conversation_id}/crm"
    for kind, table, app_name in (
        ("lead", "lead", "Dynamics 365 Sales"),
        ("case", "incident", "Dynamics 365 Customer Service"),
    ):
        refused = client.post(url, json={"kind": kind}, headers=headers)
        assert refused.status_code == 409
        error = refused.get_json()["error"]
        assert error["code"] == "records_unavailable"
        assert f"no {table} table" in error["message"] and app_name in error["message"]
    made = client.post(url, json={"kind": "contact"}, headers=headers)
    assert made.status_code == 200, made.text
    assert made.get_json()["regarding"]["table"] == "contact"


def test_without_the_apps_a_channel_person_linked_to_a_contact_is_found_next_time(
    plain_app: Flask,
) -> None:
    # The platform link has no lead column there: reading one would fail the lookup.
    conversation_id = _accepted_channel_chat(plain_app)
    made = plain_app.test_client().post(
        f"/api/agent/chats/{conversation_id}/crm",
        json={"kind": "contact"},
        headers=_headers(plain_app),
    )
    contact = made.get_json()["regarding"]
    engine = services_of(plain_app).engine
    session = AgentSession(Subscriber(lambda text: None), SAM_AGENT_ID)
    agents.do_agent_connect(engine, session)
    agents.do_agent_end(engine, session, conversation_id=conversation_id)

    # The same person writes again: the new chat regards the contact at once.
    next_chat = _channel_message(plain_app, "wamid.T2")
    assert next_chat.conversation_id != conversation_id
    assert next_chat.regarding == contact
    # Asking for the lead column too is what a plain organization refuses.
    (account,) = _whatsapp(plain_app)
    assert find_link(services_of(plain_app).dataverse, account, "4670002222") is None


def test_with_the_apps_a_case_is_made(dynamics_app: Flask) -> None:
    conversation_id = _accepted_channel_chat(dynamics_app)
    made = dynamics_app.test_client().post(
        f"/api/agent/chats/{conversation_id}/crm",
        json={"kind": "case"},
        headers=_headers(dynamics_app),
    )
    assert made.status_code == 200, made.text
    assert made.get_json()["regarding"]["table"] == "incident"


class _Answer:
    def __init__(self, body: dict[str, Any]) -> None:
        self._body = body

    def json(self) -> dict[str, Any]:
        return self._body


class _Client:
    """Answers EntityDefinitions with `tables`, or fails while `down`; counts the asks."""

    def __init__(self, tables: list[str]) -> None:
        self.tables, self.down, self.asked = tables, False, 0

    def request(self, method: str, path: str, **kwargs: Any) -> _Answer:
        self.asked += 1
        assert (method, path) == ("GET", "EntityDefinitions")
        if self.down:
            raise DataverseError(503, "", "unavailable", path)
        return _Answer({"value": [{"LogicalName": name} for name in self.tables]})


def test_the_answer_is_cached_kept_through_an_outage_and_asked_again_later() -> None:
    now = [0.0]
    client = _Client(["lead"])
    found = AppTables(client, ttl_secs=100, clock=lambda: now[0])
    assert found.present() == {"lead"} and found.present() == {"lead"}
    assert client.asked == 1
    now[0], client.down = 150.0, True
    assert found.present() == {"lead"}  # the last answer stays while Dataverse is down
    now[0], client.down, client.tables = 150.0 + RETRY_SECS, False, ["lead", "incident"]
    assert found.present() == {"lead", "incident"} and found.has("incident")
    assert client.asked == 3


def test_before_any_answer_every_table_counts_as_present() -> None:
    client = _Client([])
    client.down = True
    assert AppTables(client).present() == set(APP_TABLES)
