"""Leads, contacts and cases made from a chat's pre-chat fields, in the embedded Dataverse."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from connector.crm import tables
from connector.crm.regarding import Regarding, create_case, create_contact, create_lead
from connector.dataverse import DataverseClient, StaticTokenProvider
from connector.dataverse.odata import eq
from connector.dataverse.transport import WsgiAdapter
from connector.dataverse_local import DataverseApp

ORIGIN = "http://dataverse.invalid"


class Counter:
    """WSGI middleware counting requests."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.count = 0

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        self.count += 1
        return self.app(environ, start_response)


@pytest.fixture
def counter(dataverse_app: DataverseApp) -> Counter:
    return Counter(dataverse_app)


@pytest.fixture
def client(counter: Counter, admin_token: str) -> Iterator[DataverseClient]:
    session = requests.Session()
    session.mount(ORIGIN, WsgiAdapter(counter))
    with DataverseClient(
        f"{ORIGIN}/api/data/v9.2/", StaticTokenProvider(admin_token), session=session
    ) as dv:
        yield dv


FIELDS = {
    "firstname": "Ann",
    "lastname": "O'Neil",
    "email": "ann@shop.example",
    "phone": "+1 555 0100",
    "company": "ACME') or (1 eq 1",
    "message": "Do you ship to Norway?",
}


def test_a_lead_from_the_visitors_fields(client: DataverseClient, counter: Counter) -> None:
    lead = create_lead(client, FIELDS, subject="Chat: Sales")
    assert counter.count == 1
    assert lead.table == "lead" and lead.name == "Ann O'Neil"
    row = client.retrieve(tables.LEADS, lead.id)
    assert (row["firstname"], row["lastname"]) == ("Ann", "O'Neil")
    assert row["emailaddress1"] == "ann@shop.example"
    assert row["telephone1"] == "+1 555 0100"
    assert row["companyname"] == "ACME') or (1 eq 1"  # stored as typed, never queried
    assert row["subject"] == "Chat: Sales"
    assert row["leadsourcecode"] == 8
    assert row["description"] == "message: Do you ship to Norway?"


def test_a_contact_from_the_visitors_fields(client: DataverseClient, counter: Counter) -> None:
    contact = create_contact(client, FIELDS)
    assert counter.count == 1
    row = client.retrieve(tables.CONTACTS, contact.id)
    assert row["fullname"] == "Ann O'Neil" and contact.name == "Ann O'Neil"
    assert row["emailaddress1"] == "ann@shop.example"
    assert contact.to_dict() == {"table": "contact", "id": contact.id, "name": "Ann O'Neil"}


def test_values_are_cut_to_the_columns_and_a_nameless_visitor_gets_a_name(
    client: DataverseClient,
) -> None:
    contact = create_contact(client, {"email": "e" * 150, "firstname": "   "})
    row = client.retrieve(tables.CONTACTS, contact.id)
    assert row["lastname"] == "Visitor" and row["firstname"] is None
    assert len(row["emailaddress1"]) == 100


def test_a_case_for_the_contact(client: DataverseClient) -> None:
    contact = create_contact(client, FIELDS)
    case = create_case(client, contact, title="Shipping to Norway", description="Asked in chat")
    assert case.table == "incident" and case.name == "Shipping to Norway"
    row = client.retrieve(tables.INCIDENTS, case.id)
    assert row["_customerid_value"] == contact.id
    assert row["caseorigincode"] == 3
    assert row["description"] == "Asked in chat"


def test_a_case_needs_a_contact(client: DataverseClient) -> None:
    lead = create_lead(client, FIELDS, subject="x")
    with pytest.raises(ValueError, match="needs a contact"):
        create_case(client, lead, title="t", description="")


def test_a_repeated_create_with_the_same_id_makes_one_record(client: DataverseClient) -> None:
    record_id = str(uuid.uuid4())
    first = create_contact(client, FIELDS, record_id=record_id)
    again = create_contact(client, FIELDS, record_id=record_id)
    assert first == again and first.id == record_id
    matches = list(
        client.list(
            tables.CONTACTS, select=["contactid"], filter=eq("emailaddress1", "ann@shop.example")
        )
    )
    assert len(matches) == 1


def test_regarding_reads_back_and_refuses_other_tables() -> None:
    regarding = Regarding(table="lead", id=str(uuid.uuid4()), name="Ann")
    assert Regarding.from_dict(regarding.to_dict()) == regarding
    with pytest.raises(ValueError):
        Regarding.from_dict({"table": "account", "id": regarding.id, "name": "x"})
    with pytest.raises(ValueError):
        Regarding.from_dict({"table": "lead", "id": "1) or (1", "name": "x"})
