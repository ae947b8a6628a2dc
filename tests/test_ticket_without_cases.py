"""The ticket fallback and the offline-message form in both kinds of organization: with
Dynamics 365 Customer Service a message is a case on the visitor's contact; on plain
Dataverse (no incident table, connector/crm/app_tables.py) it is a contact and a chat
activity regarding it, with no error and no number for the visitor."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from chat_fakes import FIELDS, FakeOutbox
from test_record_identification import with_fallback
from test_sockets import Server

from connector.crm import tables
from connector.crm.chat_activity import CHAT_ACTIVITY_KIND, chat_activity_handler
from connector.dataverse import DataverseClient
from connector.dataverse.odata import eq
from connector.services import services_of

MESSAGE = "Please call me back about my order."


@pytest.fixture(params=[True, False], ids=["dynamics365", "plain_dataverse"])
def server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Server]:
    running = Server(tmp_path, FakeOutbox(), embedded_dynamics_apps=request.param)
    yield running
    running.stop()


def _dataverse(server: Server) -> DataverseClient:
    client: DataverseClient = services_of(server.app).dataverse
    return client


def test_a_message_is_a_case_or_else_a_chat_on_the_contact(server: Server) -> None:
    with_fallback(server)
    client = _dataverse(server)
    has_cases = "incident" in services_of(server.app).standin.schema.tables
    visitor = server.visitor("visitor-offline1")
    frame = {"type": "ticket.create", "client_id": "m1", "fields": FIELDS, "message": MESSAGE}
    visitor.send(frame)
    answer = visitor.expect("ticket.created")
    visitor.send(frame)  # a resend after a reconnect: still one of each
    again = visitor.expect("ticket.created")
    assert again["ticket_number"] == answer["ticket_number"]
    (person,) = list(
        client.list(
            tables.CONTACTS,
            select=["contactid", "fullname"],
            filter=eq("emailaddress1", "vera@example.com"),
        )
    )
    assert person["fullname"] == "Vera Visitor"
    outbox: FakeOutbox = services_of(server.app).outbox
    if has_cases:
        assert re.fullmatch(r"CAS-\d{5}-[A-Z]\d[A-Z]\d[A-Z]\d", answer["ticket_number"])
        (case,) = list(
            client.list(
                tables.INCIDENTS, select=["_customerid_value"], filter=eq("description", MESSAGE)
            )
        )
        assert case["_customerid_value"] == person["contactid"]
        assert outbox.items == {}
        return
    # No case table: no number, and the message is a chat activity regarding the contact,
    # queued once, written by the outbox's handler as a finished chat is.
    assert answer["ticket_number"] == ""
    ((kind, payload),) = outbox.items.values()
    assert kind == CHAT_ACTIVITY_KIND
    assert payload["regarding"] == {
        "table": "contact",
        "id": person["contactid"],
        "name": "Vera Visitor",
    }
    # This test's widget lives in a fake directory only, not as a row the activity could
    # name; a real widget is a row.
    payload = {**payload, "widget_id": None}
    handler = chat_activity_handler(client, secret=b"s" * 40)
    handler(payload)
    handler(payload)  # the outbox retrying after a crash: still one activity
    (chat,) = list(
        client.list(
            tables.CHATS,
            select=["subject", "crmchat_transcript", "_regardingobjectid_value", "statecode"],
        )
    )
    assert chat["_regardingobjectid_value"] == person["contactid"]
    assert chat["statecode"] == 1
    assert f"Vera Visitor: {MESSAGE}" in chat["crmchat_transcript"]
    (party,) = [
        p
        for p in client.list(
            "activityparties",
            select=["_partyid_value", "participationtypemask"],
            filter=eq("participationtypemask", tables.PARTY_FROM),
        )
    ]
    assert party["_partyid_value"] == person["contactid"]  # on the contact's timeline
