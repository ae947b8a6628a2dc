"""The chat's HTTP surface: widget config, agent snippets, and making CRM records."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from chat_fakes import (
    ANN_USER,
    BOB,
    BOB_USER,
    FIELDS,
    HELP,
    SHOP,
    FakeDirectory,
    FakeOutbox,
    Inbox,
    ensure_user,
)
from flask import Flask
from flask.testing import FlaskClient

from connector.app import create_app, stop_app
from connector.chat.actions import agents, visitors
from connector.chat.hub import Subscriber
from connector.chat.sessions import AgentSession, VisitorSession
from connector.crm.handshake import SignedInUser
from connector.dataverse_local import add_user
from connector.services import services_of
from connector.web.auth import issue_service_token
from connector.web.sockets import engine_of


@pytest.fixture
def app(tmp_path: Path) -> Iterator[Flask]:
    app = create_app(
        {"data_dir": tmp_path, "secret_key": "s" * 40, "public_url": "https://chat.example"},
        directory=FakeDirectory(),
        outbox=FakeOutbox(),
        start=False,
    )
    # The agents' CRM users: the records they make from chats are theirs.
    store = services_of(app).standin.store
    add_user(store, domain_name="bob@crmchat.local", last_name="Bob", user_id=BOB_USER)
    yield app
    stop_app(app)


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


def bearer(
    app: Flask, user_id: str, roles: frozenset[str] = frozenset({"CRM Chat Agent"})
) -> dict[str, str]:
    ensure_user(app, user_id, roles)
    with app.app_context():
        token = issue_service_token(SignedInUser(user_id, "User", "u@example.com", roles))
    return {"Authorization": f"Bearer {token}"}


def bob_online(app: Flask) -> AgentSession:
    session = AgentSession(Subscriber(lambda text: None), BOB)
    agents.do_agent_connect(engine_of(app), session)
    return session


def test_config_answers_the_design_and_availability_to_any_origin(
    app: Flask, client: FlaskClient
) -> None:
    response = client.get(f"/api/widgets/{SHOP}/config", base_url="https://chat.example")
    assert response.status_code == 200
    assert response.headers["Access-Control-Allow-Origin"] == "*"
    assert "max-age=30" in response.headers["Cache-Control"]
    body = response.get_json()
    assert body["widget_id"] == SHOP and body["enabled"] is True
    assert body["available"] is False  # nobody online yet
    assert body["design"]["title"]
    assert body["socket_url"] == f"wss://chat.example/ws/visitor?widget={SHOP}"

    bob_online(app)
    assert client.get(f"/api/widgets/{SHOP}/config").get_json()["available"] is True


def test_config_revalidates_with_its_etag(app: Flask, client: FlaskClient) -> None:
    first = client.get(f"/api/widgets/{HELP}/config")
    etag = first.headers["ETag"]
    again = client.get(f"/api/widgets/{HELP}/config", headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.data == b""
    bob_online(app)  # availability changed: the old ETag no longer matches
    changed = client.get(f"/api/widgets/{HELP}/config", headers={"If-None-Match": etag})
    assert changed.status_code == 200 and changed.get_json()["available"] is True


def test_an_unknown_widget_is_a_clear_404(client: FlaskClient) -> None:
    for widget_id in ("20000000-0000-0000-0000-0000000000ff", "not-a-guid"):
        response = client.get(f"/api/widgets/{widget_id}/config")
        assert response.status_code == 404
        assert response.get_json()["error"]["code"] == "not_found"
        assert response.headers["Access-Control-Allow-Origin"] == "*"


def test_agents_read_snippets_others_may_not(app: Flask, client: FlaskClient) -> None:
    response = client.get("/api/agent/snippets", headers=bearer(app, BOB_USER))
    assert response.get_json() == [
        {"name": "Thanks", "text": "Thank you for chatting with us."},
        {"name": "hello", "text": "Hello! How can I help you today?"},
    ]
    assert client.get("/api/agent/snippets").status_code == 401
    no_role = bearer(app, BOB_USER, roles=frozenset({"Salesperson"}))
    assert client.get("/api/agent/snippets", headers=no_role).status_code == 403


def active_chat(app: Flask) -> tuple[str, Inbox]:
    engine = engine_of(app)
    bob_inbox = Inbox()
    bob = AgentSession(bob_inbox.subscriber, BOB)
    agents.do_agent_connect(engine, bob)
    visitor_inbox = Inbox()
    visitor = VisitorSession(visitor_inbox.subscriber, ip="198.51.100.1")
    visitors.do_visitor_hello(engine, visitor, widget_id=SHOP, visitor_id="visitor-crm1", page={})
    visitors.do_visitor_start(engine, visitor, client_id="s", fields=FIELDS)
    conversation_id = visitor_inbox.last("chat.started")["conversation_id"]
    agents.do_agent_accept(engine, bob, conversation_id=conversation_id)
    visitors.do_visitor_send(engine, visitor, client_id="v1", text="My order did not arrive.")
    return conversation_id, bob_inbox


def test_a_case_from_a_chat_creates_the_contact_first(app: Flask, client: FlaskClient) -> None:
    conversation_id, bob_inbox = active_chat(app)
    url = f"/api/agent/chats/{conversation_id}/crm"

    response = client.post(url, json={"kind": "case"}, headers=bearer(app, BOB_USER))

    assert response.status_code == 200, response.get_json()
    regarding = response.get_json()["regarding"]
    assert regarding["table"] == "incident"
    assert bob_inbox.last("chat.updated")["chat"]["regarding"] == regarding
    dataverse = services_of(app).dataverse
    case = dataverse.retrieve("incidents", regarding["id"], select=["title", "_customerid_value"])
    contact = dataverse.retrieve("contacts", case["_customerid_value"], select=["emailaddress1"])
    assert contact["emailaddress1"] == "vera@example.com"
    again = client.post(url, json={"kind": "case"}, headers=bearer(app, BOB_USER))
    assert again.get_json()["regarding"] == regarding  # not a second case


def test_only_the_chats_agents_may_make_records(app: Flask, client: FlaskClient) -> None:
    conversation_id, _ = active_chat(app)
    url = f"/api/agent/chats/{conversation_id}/crm"
    refused = client.post(url, json={"kind": "lead"}, headers=bearer(app, ANN_USER))
    assert refused.status_code == 404
    bad = client.post(url, json={"kind": "account"}, headers=bearer(app, BOB_USER))
    assert bad.status_code == 400 and bad.get_json()["error"]["code"] == "invalid_input"
    lead = client.post(url, json={"kind": "lead"}, headers=bearer(app, BOB_USER))
    assert lead.status_code == 200 and lead.get_json()["regarding"]["table"] == "lead"


def test_records_from_a_chat_belong_to_the_agent_and_the_card_shows_the_contact(
    app: Flask, client: FlaskClient
) -> None:
    conversation_id, bob_inbox = active_chat(app)
    url = f"/api/agent/chats/{conversation_id}/crm"
    dataverse = services_of(app).dataverse

    contact = client.post(url, json={"kind": "contact"}, headers=bearer(app, BOB_USER))
    made = contact.get_json()["regarding"]
    row = dataverse.retrieve("contacts", made["id"], select=["_ownerid_value", "_createdby_value"])
    assert row["_ownerid_value"] == BOB_USER  # the agent's, not the service's
    assert row["_createdby_value"] != BOB_USER
    # The identity card now names the contact the agent just made.
    assert bob_inbox.last("chat.updated")["chat"]["contact"] == {
        "id": made["id"],
        "name": "Vera Visitor",
    }

    case = client.post(url, json={"kind": "case"}, headers=bearer(app, BOB_USER))
    regarding = case.get_json()["regarding"]
    row = dataverse.retrieve(
        "incidents", regarding["id"], select=["_ownerid_value", "_customerid_value", "description"]
    )
    assert row["_ownerid_value"] == BOB_USER
    assert row["_customerid_value"] == made["id"]  # the contact made before, not a second one
    lines = row["description"].splitlines()
    # A readable transcript: a time and a name on each line, system lines named "System".
    stamp = r"\[(\d{4}-\d\d-\d\d )?\d\d:\d\d:\d\d\]"
    assert re.fullmatch(stamp + r" System: Bob joined the chat\.", lines[0])
    assert re.fullmatch(stamp + r" Vera Visitor: My order did not arrive\.", lines[-1])
    assert not any(line.startswith("—") for line in lines)

    lead = client.post(url, json={"kind": "lead"}, headers=bearer(app, BOB_USER))
    lead_id = lead.get_json()["regarding"]["id"]
    assert dataverse.retrieve("leads", lead_id, select=["_ownerid_value"])["_ownerid_value"] == (
        BOB_USER
    )


def test_an_agent_reads_an_earlier_chat_of_the_visitor_from_history(
    app: Flask, client: FlaskClient
) -> None:
    first_id, _ = active_chat(app)
    engine = engine_of(app)
    bob = AgentSession(Inbox().subscriber, BOB)
    agents.do_agent_connect(engine, bob)
    agents.do_agent_end(engine, bob, conversation_id=first_id)
    second_id, bob_inbox = active_chat(app)
    history = bob_inbox.last("chat.accepted")["chat"]["history"]
    assert [h["conversation_id"] for h in history] == [first_id]

    url = f"/api/agent/chats/{second_id}/history/{first_id}"
    reply = client.get(url, headers=bearer(app, BOB_USER))
    assert reply.status_code == 200, reply.get_json()
    texts = [m["text"] for m in reply.get_json()["messages"]]
    assert "My order did not arrive." in texts
    # Only from a chat with that visitor, and only an earlier chat of theirs.
    assert client.get(url, headers=bearer(app, ANN_USER)).status_code == 404
    own = f"/api/agent/chats/{second_id}/history/{second_id}"
    assert client.get(own, headers=bearer(app, BOB_USER)).status_code == 404


# ----- the Contact panel: link another matching contact, unpair -------------------------


def test_an_agent_links_only_a_contact_with_the_visitors_email_and_unpairs_it(
    app: Flask, client: FlaskClient
) -> None:
    conversation_id, bob_inbox = active_chat(app)
    url = f"/api/agent/chats/{conversation_id}/contact"
    dataverse = services_of(app).dataverse
    vera = dataverse.create(
        "contacts", {"firstname": "Vera", "lastname": "Older", "emailaddress1": "vera@example.com"}
    )
    stranger = dataverse.create(
        "contacts", {"firstname": "Sid", "lastname": "Other", "emailaddress1": "sid@example.com"}
    )

    # An id the agent learnt elsewhere is not a credential: only a match of this visitor.
    refused = client.put(url, json={"contact_id": stranger}, headers=bearer(app, BOB_USER))
    assert refused.status_code == 404
    assert refused.get_json()["error"]["code"] == "not_found"
    assert "Sid" not in str(bob_inbox.of_type("chat.updated"))
    bad = client.put(url, json={"contact_id": "1' or 1 eq 1"}, headers=bearer(app, BOB_USER))
    assert bad.status_code == 400
    # Only the chat's agents.
    not_in_chat = client.put(url, json={"contact_id": vera}, headers=bearer(app, ANN_USER))
    assert not_in_chat.status_code == 404

    linked = client.put(url, json={"contact_id": vera}, headers=bearer(app, BOB_USER))
    assert linked.status_code == 200, linked.get_json()
    chat = bob_inbox.last("chat.updated")["chat"]
    assert chat["contact"] == {"id": vera, "name": "Vera Older"}
    assert chat["regarding"] == {"table": "contact", "id": vera, "name": "Vera Older"}

    unpaired = client.delete(url, headers=bearer(app, BOB_USER))
    assert unpaired.status_code == 200
    chat = bob_inbox.last("chat.updated")["chat"]
    assert chat["contact"] is None and chat["regarding"] is None
    again = client.delete(url, headers=bearer(app, BOB_USER))
    assert again.status_code == 400
    assert again.get_json()["error"]["code"] == "invalid_input"


# ----- the Case panel: assign the chat to a case ----------------------------------------


def test_an_agent_assigns_the_chat_only_to_a_case_of_theirs_the_contacts_or_its_accounts(
    app: Flask, client: FlaskClient
) -> None:
    from connector.demo import admin_client

    conversation_id, bob_inbox = active_chat(app)
    dataverse = admin_client(services_of(app).standin)
    account = dataverse.create("accounts", {"name": "Vera Ltd"})
    vera = dataverse.create(
        "contacts",
        {
            "lastname": "Vera",
            "emailaddress1": "vera@example.com",
            "parentcustomerid_account@odata.bind": f"/accounts({account})",
        },
    )
    other = dataverse.create("contacts", {"lastname": "Other"})

    contacts_case = dataverse.create(
        "incidents", {"title": "Vera's", "customerid_contact@odata.bind": f"/contacts({vera})"}
    )
    accounts_case = dataverse.create(
        "incidents", {"title": "Ltd's", "customerid_account@odata.bind": f"/accounts({account})"}
    )
    bobs_case = dataverse.create(
        "incidents",
        {
            "title": "Bob's",
            "customerid_contact@odata.bind": f"/contacts({other})",
            "ownerid@odata.bind": f"/systemusers({BOB_USER})",
        },
    )
    strangers_case = dataverse.create(
        "incidents", {"title": "Secret", "customerid_contact@odata.bind": f"/contacts({other})"}
    )
    client.put(
        f"/api/agent/chats/{conversation_id}/contact",
        json={"contact_id": vera},
        headers=bearer(app, BOB_USER),
    )
    url = f"/api/agent/chats/{conversation_id}/case"

    refused = client.put(url, json={"case_id": strangers_case}, headers=bearer(app, BOB_USER))
    assert refused.status_code == 404
    assert "Secret" not in str(bob_inbox.of_type("chat.updated"))
    for case_id, title in (
        (contacts_case, "Vera's"),
        (accounts_case, "Ltd's"),
        (bobs_case, "Bob's"),
    ):
        answer = client.put(url, json={"case_id": case_id}, headers=bearer(app, BOB_USER))
        assert answer.status_code == 200, answer.get_json()
        assert bob_inbox.last("chat.updated")["chat"]["regarding"] == {
            "table": "incident",
            "id": case_id,
            "name": title,
        }
    # Assigning a case keeps the contact.
    assert bob_inbox.last("chat.updated")["chat"]["contact"]["id"] == vera
    not_in_chat = client.put(url, json={"case_id": bobs_case}, headers=bearer(app, ANN_USER))
    assert not_in_chat.status_code == 404
