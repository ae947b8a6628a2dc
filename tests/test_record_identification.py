"""Record identification and the ticket fallback against the embedded Dataverse.

Identification (docs/protocol.md, "Record identification"): Email, else Name, else Phone
finds the one active contact; several find none; a contact with exactly one active case
links that case too. One Dataverse request per chat start (the contact, its open cases
expanded), off the engine lock.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from chat_fakes import BOB_USER, FIELDS, SHOP, FakeDirectory, FakeOutbox
from test_sockets import Server

from connector.crm import tables
from connector.crm.design import TicketFallback, WidgetDesign
from connector.crm.identification import identify, lookup_key
from connector.dataverse import DataverseClient
from connector.dataverse.odata import eq
from connector.dataverse_local import ADMIN_USER_ID


class Counting:
    """A client that counts the list requests it passes on."""

    def __init__(self, client: DataverseClient) -> None:
        self.client = client
        self.requests = 0

    def list(self, *args: Any, **kwargs: Any) -> Any:
        self.requests += 1
        return list(self.client.list(*args, **kwargs))


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    running = Server(tmp_path, FakeOutbox())
    yield running
    running.stop()


def dataverse(server: Server) -> DataverseClient:
    client: DataverseClient = server.app.extensions["crmchat.dataverse"]
    return client


def contact(client: DataverseClient, first: str, last: str, **columns: Any) -> str:
    return client.create(tables.CONTACTS, {"firstname": first, "lastname": last, **columns})


def case(client: DataverseClient, contact_id: str, title: str, **columns: Any) -> str:
    return client.create(
        tables.INCIDENTS,
        {
            "title": title,
            "customerid_contact@odata.bind": tables.bind(tables.CONTACTS, contact_id),
            **columns,
        },
    )


def test_the_lookup_key_follows_email_then_name_then_phone() -> None:
    assert lookup_key({"Email": "a@x.test", "Name": "Ann"}) == ("emailaddress1", "a@x.test")
    assert lookup_key({"Name": {"value": "Ann Lee", "isDisplayable": True}}) == (
        "fullname",
        "Ann Lee",
    )
    assert lookup_key({"phone": "+47 555"}) == ("mobilephone", "+47 555")
    assert lookup_key({"Plan": "Pro"}) is None
    # A verified identity's email is what counts.
    assert lookup_key({"Name": "Ann"}, identity_email="ann@x.test") == (
        "emailaddress1",
        "ann@x.test",
    )


def test_one_match_links_the_contact_and_its_only_case(server: Server) -> None:
    client = dataverse(server)
    ann = contact(client, "Ann", "O'Neil", emailaddress1="ann.o'neil@x.test")
    only = case(client, ann, "Broken bike")
    counting = Counting(client)
    found = identify(counting, ("emailaddress1", "ann.o'neil@x.test"))  # type: ignore[arg-type]
    assert found.contact is not None and found.contact.id == ann
    assert found.contact.name == "Ann O'Neil"
    assert found.case is not None and found.case.id == only
    assert found.regarding == found.case
    assert counting.requests == 1  # the contact with its open cases expanded


def test_several_matches_or_none_link_nothing(server: Server) -> None:
    client = dataverse(server)
    contact(client, "Tom", "One", emailaddress1="same@x.test")
    contact(client, "Tim", "Two", emailaddress1="same@x.test")
    counting = Counting(client)
    assert identify(counting, ("emailaddress1", "same@x.test")).contact is None  # type: ignore[arg-type]
    assert identify(counting, ("emailaddress1", "nobody@x.test")).contact is None  # type: ignore[arg-type]
    assert counting.requests == 2  # one each


def test_inactive_contacts_and_cases_do_not_count(server: Server) -> None:
    client = dataverse(server)
    contact(client, "Old", "Dup", mobilephone="555-1", statecode=1, statuscode=2)
    live = contact(client, "New", "Dup", mobilephone="555-1")
    case(client, live, "Open one")
    closed = case(client, live, "Closed one")
    client.update(tables.INCIDENTS, closed, {"statecode": 1, "statuscode": 5})
    found = identify(client, ("mobilephone", "555-1"))
    assert found.contact is not None and found.contact.id == live
    assert found.case is not None and found.case.name == "Open one"


def test_a_contact_with_two_open_cases_links_only_the_contact(server: Server) -> None:
    client = dataverse(server)
    ann = contact(client, "Ann", "Busy", emailaddress1="busy@x.test")
    case(client, ann, "One")
    case(client, ann, "Two")
    found = identify(client, ("emailaddress1", "busy@x.test"))
    assert found.contact is not None and found.case is None
    assert found.regarding == found.contact


def test_a_chat_started_with_a_context_email_is_linked_for_the_agent(server: Server) -> None:
    client = dataverse(server)
    ann = contact(client, "Ann", "Lee", emailaddress1="ann@shop.example")
    only = case(client, ann, "Late delivery")
    bob = server.agent(BOB_USER)
    visitor = server.visitor("visitor-ident1")
    visitor.send(
        {
            "type": "chat.start",
            "client_id": "s1",
            "fields": FIELDS,
            "context": {"Email": "ann@shop.example"},
        }
    )
    conversation_id = visitor.expect("chat.started")["conversation_id"]
    assert bob.expect("chat.offered")["chat"]["conversation_id"] == conversation_id
    updated = bob.expect("chat.updated")["chat"]
    # The page's claim suggests the contact, plainly unverified, and never links its case.
    assert updated["contact"] == {"id": ann, "name": "Ann Lee", "verified": False}
    assert updated["regarding"] == {"table": "contact", "id": ann, "name": "Ann Lee"}
    assert only not in json.dumps(updated)


def test_a_returning_visitor_is_linked_by_the_email_they_typed(server: Server) -> None:
    client = dataverse(server)
    # The contact an agent made from this visitor's first chat (pre-chat email).
    vera = contact(client, "Vera", "Visitor", emailaddress1=FIELDS["email"])
    bob = server.agent(BOB_USER)
    visitor = server.visitor("visitor-ident2")
    visitor.send({"type": "chat.start", "client_id": "s1", "fields": FIELDS})
    visitor.expect("chat.started")
    bob.expect("chat.offered")
    updated = bob.expect("chat.updated")["chat"]
    # What a visitor types is a claim: the agent sees the contact marked unverified.
    assert updated["contact"] == {"id": vera, "name": "Vera Visitor", "verified": False}
    assert updated["regarding"] == {"table": "contact", "id": vera, "name": "Vera Visitor"}


# ----- ticket fallback ------------------------------------------------------------------


def with_fallback(server: Server, *, owner: str | None = None) -> None:
    directory: FakeDirectory = server.app.extensions["crmchat.directory"]
    shop = directory.widget(SHOP)
    assert shop is not None
    design = WidgetDesign(ticket_fallback=TicketFallback(enabled=True))
    directory.set_widget(replace(shop, design=design, owner=owner))


CASE_NUMBER = re.compile(r"CAS-\d{5}-[A-Z]\d[A-Z]\d[A-Z]\d")


def test_a_ticket_becomes_a_case_once_per_client_id(server: Server) -> None:
    with_fallback(server)
    client = dataverse(server)
    visitor = server.visitor("visitor-ticket1")
    frame = {
        "type": "ticket.create",
        "client_id": "t1",
        "fields": FIELDS,
        "message": "Please call me back about my order.",
    }
    visitor.send(frame)
    first = visitor.expect("ticket.created")
    assert first["client_id"] == "t1" and CASE_NUMBER.fullmatch(first["ticket_number"])
    visitor.send(frame)  # a resend after a reconnect
    assert visitor.expect("ticket.created")["ticket_number"] == first["ticket_number"]
    cases = list(
        client.list(
            tables.INCIDENTS,
            select=["title", "description", "caseorigincode", "_customerid_value", "ticketnumber"],
            filter=eq("description", frame["message"]),
        )
    )
    assert len(cases) == 1
    # The visitor is shown the number the case carries in CRM.
    assert cases[0]["ticketnumber"] == first["ticket_number"]
    # Who wrote, through which topic, and about what.
    assert cases[0]["title"] == (
        "Sales: message from Vera Visitor – Please call me back about my order."
    )
    assert cases[0]["description"] == "Please call me back about my order."
    assert cases[0]["caseorigincode"] == 3
    people = list(
        client.list(
            tables.CONTACTS,
            select=["contactid", "fullname"],
            filter=eq("emailaddress1", "vera@example.com"),
        )
    )
    assert [p["fullname"] for p in people] == ["Vera Visitor"]
    assert cases[0]["_customerid_value"] == people[0]["contactid"]


def test_a_ticket_needs_the_fallback_and_reuses_an_identified_contact(server: Server) -> None:
    visitor = server.visitor("visitor-ticket2")
    visitor.send({"type": "ticket.create", "client_id": "t1", "fields": FIELDS, "message": "Hi"})
    assert visitor.expect("error")["code"] == "invalid_input"
    with_fallback(server)
    client = dataverse(server)
    known = contact(client, "Ann", "Lee", emailaddress1="ann@shop.example")
    token = server.app.extensions["crmchat.chat"].tokens.issue_identity(
        user_id=str(uuid.uuid4()), email="ann@shop.example", name="Ann Lee"
    )
    signed_in = server.visitor("visitor-ticket3", identity={"token": token})
    signed_in.send({"type": "ticket.create", "client_id": "t9", "fields": {}, "message": "Hello"})
    signed_in.expect("ticket.created")
    (only,) = list(
        client.list(
            tables.INCIDENTS, select=["_customerid_value"], filter=eq("description", "Hello")
        )
    )
    assert only["_customerid_value"] == known
    same = client.list(tables.CONTACTS, select=["contactid"], filter=eq("lastname", "Lee"))
    assert [c["contactid"] for c in same] == [known]  # no second Ann Lee


def test_two_messages_from_one_email_make_one_contact_owned_by_the_widgets_owner(
    server: Server,
) -> None:
    client = dataverse(server)
    owner = ADMIN_USER_ID  # not the service's application user, which writes the records
    with_fallback(server, owner=tables.bind(tables.SYSTEMUSERS, owner))
    for number, visitor_id in enumerate(("visitor-ticket4", "visitor-ticket5")):
        visitor = server.visitor(visitor_id)
        visitor.send(
            {
                "type": "ticket.create",
                "client_id": f"m{number}",
                "fields": FIELDS,
                "message": f"Message {number}",
            }
        )
        visitor.expect("ticket.created")
    people = list(
        client.list(
            tables.CONTACTS,
            select=["contactid", "_ownerid_value", "_createdby_value"],
            filter=eq("emailaddress1", "vera@example.com"),
        )
    )
    assert len(people) == 1  # the second message reused the first one's contact
    assert people[0]["_createdby_value"] != owner
    assert people[0]["_ownerid_value"] == owner
    cases = list(
        client.list(
            tables.INCIDENTS,
            select=["_ownerid_value"],
            filter=eq("_customerid_value", uuid.UUID(people[0]["contactid"])),
        )
    )
    assert len(cases) == 2
    assert {c["_ownerid_value"] for c in cases} == {owner}
