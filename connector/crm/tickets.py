"""Ticket fallback: a visitor's message becomes a case when no agent could chat.

`create_ticket` makes (or reuses the identified) contact and an incident for it: the title
says who wrote and what about (topic, name, the message's start), the message is the
description, origin Web; both are owned by the widget's owner. Both records get
ids the caller derives from the visitor and the frame's `client_id`, so sending the same
ticket twice makes one contact and one case (create-only upserts).

The answer is the case's `ticketnumber`, which Dataverse autonumbers ("CAS-01001-X1Y2Z3";
one more GET). Only when none came back is the number ``CAS-`` and the first eight hex
digits of the case id, upper case.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass

from connector.crm import tables
from connector.crm.regarding import Regarding, create_case, create_contact
from connector.dataverse import DataverseClient
from connector.dataverse.odata import guid

__all__ = ["TICKET_NAMESPACE", "Ticket", "create_ticket", "ticket_ids", "ticket_title"]

# uuid5 namespace of the ids of tickets' records (idempotent on visitor + client_id).
TICKET_NAMESPACE = uuid.UUID("0b7f1f0e-5a52-4c4e-9d7a-6f3c2b8f1c11")
# How much of the message a case title quotes: enough to tell cases apart in a list view.
_TITLE_EXCERPT_CHARS = 80


@dataclass(frozen=True)
class Ticket:
    case: Regarding
    contact: Regarding
    ticket_number: str


def ticket_ids(visitor_id: str, client_id: str) -> tuple[str, str]:
    """The (contact id, case id) a ticket from this visitor and client_id gets."""
    base = f"{visitor_id}/{client_id}"
    return (
        str(uuid.uuid5(TICKET_NAMESPACE, f"contact/{base}")),
        str(uuid.uuid5(TICKET_NAMESPACE, f"case/{base}")),
    )


def ticket_title(topic: str, name: str, message: str) -> str:
    """Who wrote and about what: "Sales: message from Vera Visitor – Please call me…"."""
    who = " ".join(name.split()) or "a visitor"
    what = " ".join(message.split())
    if len(what) > _TITLE_EXCERPT_CHARS:
        what = what[: _TITLE_EXCERPT_CHARS - 1].rstrip() + "…"
    head = (
        f"{' '.join(topic.split())}: message from {who}" if topic.strip() else f"Message from {who}"
    )
    return f"{head} – {what}" if what else head


def create_ticket(
    client: DataverseClient,
    fields: Mapping[str, str],
    *,
    message: str,
    topic: str,
    contact: Regarding | None,
    contact_id: str,
    case_id: str,
    owner: str | None = None,
) -> Ticket:
    """Create the case (and the contact unless `contact` is given); safe to repeat.

    Both records are owned by `owner` (an `ownerid` bind; the widget's owner), else by the
    service's application user. Raises `DataverseError` when Dataverse refuses a record.
    """
    if contact is None:
        contact = create_contact(client, fields, owner=owner, record_id=contact_id)
    title = ticket_title(topic, contact.name, message)
    case = create_case(
        client, contact, title=title, description=message, owner=owner, record_id=case_id
    )
    row = client.retrieve(tables.INCIDENTS, case.id, select=["ticketnumber"])
    number = row.get("ticketnumber")
    if not isinstance(number, str) or not number:
        # Only a Dataverse without case numbering gets here; the id is what links it.
        number = "CAS-" + guid(case.id).replace("-", "")[:8].upper()
    return Ticket(case=case, contact=contact, ticket_number=number)
