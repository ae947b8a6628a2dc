"""A channel's person linked to a contact or lead (crmchat_platformlink): the agent's
"create contact/lead" on the first conversation writes the link, and the person's later
conversations on that account open regarding the record by themselves."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from flask import Flask

from connector.app import create_app, stop_app
from connector.channels.links import LINKS_SET, find_link
from connector.channels.model import ChannelAccount, ChannelType, EventKind, InboundEvent
from connector.channels.shared import channels_of
from connector.chat.actions import agents
from connector.chat.hub import Subscriber
from connector.chat.model import Conversation
from connector.chat.sessions import AgentSession
from connector.crm.connection import SERVICE_USER_ID
from connector.crm.handshake import SignedInUser
from connector.demo import SAM_AGENT_ID, SAM_USER_ID, admin_client
from connector.services import services_of
from connector.web.auth import issue_service_token


@pytest.fixture
def app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Flask]:
    monkeypatch.setenv("CRMCHAT_DEMO", "1")
    app = create_app({"data_dir": tmp_path, "log_level": "WARNING"}, start=False)
    yield app
    stop_app(app)


def _writes(app: Flask, account: ChannelAccount, person: str, message_id: str) -> Conversation:
    engine = services_of(app).engine
    event = InboundEvent(
        channel=account.channel,
        account_key=account.key,
        kind=EventKind.MESSAGE,
        person_id=person,
        person_name="Pat Person",
        message_id=message_id,
        text="hello again",
        at=datetime.now(UTC),
    )
    channels_of(app).bridge.do_channel_event(account, event)
    (chat,) = [c for c in engine.conversations.values() if c.channel and c.is_open]
    return chat


def _sam(app: Flask) -> AgentSession:
    engine = services_of(app).engine
    session = AgentSession(Subscriber(lambda text: None), SAM_AGENT_ID)
    agents.do_agent_connect(engine, session)
    return session


@pytest.mark.parametrize("kind", ["contact", "lead"])
def test_the_record_made_from_a_first_chat_is_found_by_the_persons_next_chat(
    app: Flask, kind: str
) -> None:
    engine = services_of(app).engine
    (account,) = [a for a in channels_of(app).accounts.all() if a.channel is ChannelType.WHATSAPP]
    first = _writes(app, account, "4670001111", "wamid.IN1")
    assert first.regarding is None  # an unknown person: nothing to link to yet
    sam = _sam(app)
    agents.do_agent_accept(engine, sam, conversation_id=first.conversation_id)
    with app.app_context():
        token = issue_service_token(
            SignedInUser(
                SAM_USER_ID, "Sam Sales", "sam@crmchat.local", frozenset({"CRM Chat Agent"})
            )
        )
    answer = app.test_client().post(
        f"/api/agent/chats/{first.conversation_id}/crm",
        json={"kind": kind},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert answer.status_code == 200, answer.text
    record = answer.get_json()["regarding"]
    assert record["table"] == kind

    links = list(admin_client(services_of(app).standin).list(LINKS_SET))
    assert len(links) == 1
    assert links[0]["crmchat_platformuserid"] == "4670001111"
    assert links[0][f"_crmchat_{kind}id_value"] == record["id"]
    agents.do_agent_end(engine, sam, conversation_id=first.conversation_id)

    # The same person writes again days later: the new chat regards the record at once.
    second = _writes(app, account, "4670001111", "wamid.IN2")
    assert second.conversation_id != first.conversation_id
    assert second.regarding == {"table": kind, "id": record["id"], "name": record["name"]}
    if kind == "contact":
        assert second.contact == {"id": record["id"], "name": record["name"]}
    # Another person on the same account is not linked.
    assert find_link(services_of(app).dataverse, account, "4670002222") is None


def test_linking_refuses_bad_input_and_contacts_that_do_not_exist(app: Flask) -> None:
    engine = services_of(app).engine
    (account,) = [a for a in channels_of(app).accounts.all() if a.channel is ChannelType.MESSENGER]
    chat = _writes(app, account, "psid-77", "m_in77")
    agents.do_agent_accept(engine, _sam(app), conversation_id=chat.conversation_id)
    with app.app_context():
        token = issue_service_token(
            SignedInUser(
                SAM_USER_ID, "Sam Sales", "sam@crmchat.local", frozenset({"CRM Chat Agent"})
            )
        )
    headers = {"Authorization": f"Bearer {token}"}
    client = app.test_client()
    base = f"/api/agent/chats/{chat.conversation_id}"

    found = client.get(f"{base}/contacts", query_string={"q": "smith"}, headers=headers)
    assert found.status_code == 200
    assert [c["name"] for c in found.get_json()["contacts"]] == ["Ann Smith"]
    # An OData quote in the search is a literal, not the end of the string.
    quoted = client.get(f"{base}/contacts", query_string={"q": "a') or (1 eq 1"}, headers=headers)
    assert quoted.status_code == 200 and quoted.get_json()["contacts"] == []
    short = client.get(f"{base}/contacts", query_string={"q": "a"}, headers=headers)
    assert short.status_code == 400 and short.get_json()["error"]["code"] == "invalid_input"

    nobody = client.post(
        f"{base}/link", json={"contact_id": "0c5a1e50-7d1c-4e0a-9b51-000000000000"}, headers=headers
    )
    assert nobody.status_code == 404 and nobody.get_json()["error"]["code"] == "unknown_contact"
    not_an_id = client.post(f"{base}/link", json={"contact_id": "1 or 1"}, headers=headers)
    assert not_an_id.status_code == 400
    assert chat.regarding is None
    assert list(admin_client(services_of(app).standin).list(LINKS_SET)) == []


def test_a_person_known_only_as_a_lead_is_linked_to_that_lead_by_the_service_user(
    app: Flask,
) -> None:
    engine = services_of(app).engine
    admin = admin_client(services_of(app).standin)
    lead_id = admin.create(
        "leads", {"firstname": "Pat", "lastname": "Enquirer", "emailaddress1": "pat@example.com"}
    )
    closed_id = admin.create("leads", {"firstname": "Pat", "lastname": "Closed"})
    admin.update("leads", closed_id, {"statecode": 2, "statuscode": 4})
    (account,) = [a for a in channels_of(app).accounts.all() if a.channel is ChannelType.VIBER]
    chat = _writes(app, account, "viber-pat", "v-in1")
    agents.do_agent_accept(engine, _sam(app), conversation_id=chat.conversation_id)
    with app.app_context():
        token = issue_service_token(
            SignedInUser(
                SAM_USER_ID, "Sam Sales", "sam@crmchat.local", frozenset({"CRM Chat Agent"})
            )
        )
    headers = {"Authorization": f"Bearer {token}"}
    client = app.test_client()
    base = f"/api/agent/chats/{chat.conversation_id}"

    found = client.get(f"{base}/contacts", query_string={"q": "pat@ex"}, headers=headers)
    assert found.status_code == 200, found.text
    assert found.get_json()["contacts"] == []
    assert [(c["id"], c["name"]) for c in found.get_json()["leads"]] == [
        (str(lead_id).lower(), "Pat Enquirer")
    ]
    both = client.post(
        f"{base}/link", json={"contact_id": str(lead_id), "lead_id": str(lead_id)}, headers=headers
    )
    assert both.status_code == 400
    closed = client.post(f"{base}/link", json={"lead_id": str(closed_id)}, headers=headers)
    assert closed.status_code == 404 and closed.get_json()["error"]["code"] == "unknown_lead"

    linked = client.post(f"{base}/link", json={"lead_id": str(lead_id)}, headers=headers)
    assert linked.status_code == 200, linked.text
    regarding = {"table": "lead", "id": str(lead_id).lower(), "name": "Pat Enquirer"}
    assert linked.get_json()["regarding"] == regarding
    assert chat.regarding == regarding
    (link,) = admin.list(LINKS_SET)
    assert link["_crmchat_leadid_value"] == str(lead_id).lower()
    # The service's application user wrote it, not Sam (whose role creates only its own).
    assert link["_createdby_value"] == SERVICE_USER_ID
    agents.do_agent_end(engine, _sam(app), conversation_id=chat.conversation_id)

    later = _writes(app, account, "viber-pat", "v-in2")
    assert later.regarding == regarding and later.contact is None
