""" "Send a new message": an agent starts a conversation on a channel with a contact who
wrote to us there before (their platform link), or with a case's contact (the chat then
regards the case); nobody else can be messaged. On WhatsApp, days after the person's
last message, only a template goes out."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from flask import Flask
from test_channels_templates import _bearer, _received, _whatsapp
from test_channels_templates import app as templates_app  # noqa: F401 - a fixture

from connector.channels.model import EventKind, InboundEvent
from connector.channels.shared import channels_of
from connector.channels.templates import do_sync_templates
from connector.chat.actions import agents
from connector.chat.actions.channels import ChatOutsideWindow
from connector.chat.hub import Subscriber
from connector.chat.model import ConversationState
from connector.chat.sessions import AgentSession
from connector.demo import SAM_AGENT_ID, SAM_USER_ID, admin_client
from connector.services import services_of


@pytest.fixture
def app(templates_app: Flask) -> Iterator[Flask]:  # noqa: F811
    yield templates_app


def _sam(app: Flask) -> AgentSession:
    session = AgentSession(Subscriber(lambda text: None), SAM_AGENT_ID)
    agents.do_agent_connect(services_of(app).engine, session)
    return session


def test_a_past_contact_is_messaged_with_a_template_and_a_stranger_is_refused(
    app: Flask, tmp_path: Path
) -> None:
    engine = services_of(app).engine
    account = _whatsapp(app)
    client = app.test_client()
    sam = _bearer(app, SAM_USER_ID, {"CRM Chat Agent"})
    # Three days ago Pat wrote on WhatsApp; Sam made a contact of them (the link).
    event = InboundEvent(
        channel=account.channel,
        account_key=account.key,
        kind=EventKind.MESSAGE,
        person_id="46700005555",
        person_name="Pat Outbound",
        message_id="wamid.IN-3d",
        text="Do you have it in blue?",
        at=datetime.now(UTC) - timedelta(days=3),
    )
    clock = engine.clock
    engine.clock = lambda: event.at  # that chat happened three days ago
    try:
        channels_of(app).bridge.do_channel_event(account, event)
        (first,) = [c for c in engine.conversations.values() if c.channel and c.is_open]
        session = _sam(app)
        agents.do_agent_accept(engine, session, conversation_id=first.conversation_id)
        made = client.post(
            f"/api/agent/chats/{first.conversation_id}/crm", json={"kind": "contact"}, headers=sam
        )
        assert made.status_code == 200, made.text
        contact = made.get_json()["regarding"]
        agents.do_agent_end(engine, session, conversation_id=first.conversation_id)
    finally:
        engine.clock = clock

    # Ann Smith never wrote on a channel: not offered, and refused when asked for.
    found = client.get("/api/agent/outbound", query_string={"q": "smith"}, headers=sam)
    assert found.status_code == 200 and found.get_json()["people"] == []
    ann = list(
        admin_client(services_of(app).standin).list(
            "contacts", select=["contactid"], filter="fullname eq 'Ann Smith'"
        )
    )
    stranger = client.post(
        "/api/agent/outbound",
        json={"contact_id": ann[0]["contactid"], "account_id": account.key},
        headers=sam,
    )
    assert stranger.status_code == 400
    assert stranger.get_json()["error"]["code"] == "never_contacted"

    # (A contact made from a channel chat is named as the chat's visitor fields say.)
    found = client.get("/api/agent/outbound", query_string={"q": contact["name"]}, headers=sam)
    (person,) = [p for p in found.get_json()["people"] if p["id"] == contact["id"]]
    assert person["id"] == contact["id"]
    assert [(c["channel"], c["account_id"]) for c in person["channels"]] == [
        ("whatsapp", account.key)
    ]

    started = client.post(
        "/api/agent/outbound",
        json={"contact_id": contact["id"], "account_id": account.key},
        headers=sam,
    )
    assert started.status_code == 200, started.text
    assert started.get_json()["opened"] is True
    conversation_id = started.get_json()["conversation_id"]
    chat = engine.conversations[conversation_id]
    assert chat.state is ConversationState.ACTIVE and chat.owner_agent_id == SAM_AGENT_ID
    assert chat.regarding == {"table": "contact", **contact}
    assert chat.channel is not None and chat.channel["person"] == "46700005555"
    # Three days on, WhatsApp takes only a template.
    assert [r["mode"] for r in chat.channel["rules"]] == ["free", "template_only"]
    with pytest.raises(ChatOutsideWindow):
        agents.do_agent_send(
            engine, session, conversation_id=conversation_id, client_id="a1", text="Hello"
        )
    assert do_sync_templates(services_of(app).dataverse, channels_of(app).clients.meta, account)
    offered = client.get(f"/api/agent/chats/{conversation_id}/templates", headers=sam)
    order = next(t for t in offered.get_json()["templates"] if t["name"] == "order_update")
    sent = client.post(
        f"/api/agent/chats/{conversation_id}/template",
        json={"template_id": order["id"], "parameters": ["Pat", "77"], "client_id": "t1"},
        headers=sam,
    )
    assert sent.status_code == 200, sent.text
    deadline = time.monotonic() + 10
    while not _received(app, account, "46700005555") and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _received(app, account, "46700005555") == ["[template order_update (en_US)] Pat | 77"]

    # Asking again opens nothing new: the open conversation is Sam's.
    again = client.post(
        "/api/agent/outbound",
        json={"contact_id": contact["id"], "account_id": account.key},
        headers=sam,
    )
    assert again.get_json() == {"conversation_id": conversation_id, "opened": False}
    agents.do_agent_end(engine, session, conversation_id=conversation_id)

    # From a case: its contact is messaged and the conversation regards the case.
    case_id = admin_client(services_of(app).standin).create(
        "incidents",
        {"title": "Blue bike", "customerid_contact@odata.bind": f"/contacts({contact['id']})"},
    )
    # The case form's "Send a new message" opens the console set to it: its contact,
    # the accounts they wrote to, and the case the conversation will regard.
    preset = client.get(f"/api/agent/outbound?case_id={case_id}", headers=sam).get_json()
    assert preset["case"] == {"table": "incident", "id": str(case_id).lower(), "name": "Blue bike"}
    assert [p["id"] for p in preset["people"]] == [contact["id"]]
    assert [c["account_id"] for c in preset["people"][0]["channels"]] == [account.key]
    by_contact = client.get(f"/api/agent/outbound?contact_id={contact['id']}", headers=sam)
    assert by_contact.get_json()["case"] is None
    assert by_contact.get_json()["people"] == preset["people"]
    both = client.get(
        f"/api/agent/outbound?case_id={case_id}&contact_id={contact['id']}", headers=sam
    )
    assert both.status_code == 400
    missing = "0c5a1e50-0000-4000-8000-000000000009"
    assert client.get(f"/api/agent/outbound?case_id={missing}", headers=sam).status_code == 404
    from_case = client.post(
        "/api/agent/outbound",
        json={"case_id": str(case_id), "account_id": account.key},
        headers=sam,
    )
    assert from_case.status_code == 200, from_case.text
    case_chat = engine.conversations[from_case.get_json()["conversation_id"]]
    assert case_chat.regarding == {
        "table": "incident",
        "id": str(case_id).lower(),
        "name": "Blue bike",
    }
    assert case_chat.contact == {"id": contact["id"], "name": contact["name"]}
