"""Ticket fallback: a visitor's message becomes a case when no agent could chat.

`create_ticket` makes (or reuses the identified) contact and an incident for it: title
from the widget's first topic, the message as description, origin Web. Both records get
ids the caller derives from the visitor and the frame's `client_id`, so sending the same
ticket twice makes one contact and one case (create-only upserts).

The answer is the case's `ticketnumber` when Dataverse generated one (one more GET); the
embedded Dataverse does not generate them, and then the number is ``CAS-`` and the first
eight hex digits of the case id, upper case (the id itself is what links it in CRM).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass

from connector.crm import tables
from connector.crm.regarding import Regarding, create_case, create_contact
from connector.dataverse import DataverseClient
from connector.dataverse.odata import guid

__all__ = ["TICKET_NAMESPACE", "Ticket", "create_ticket", "ticket_ids"]

# uuid5 namespace of the ids of tickets' records (idempotent on visitor + client_id).
TICKET_NAMESPACE = uuid.UUID("0b7f1f0e-5a52-4c4e-9d7a-6f3c2b8f1c11")


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


def create_ticket(
    client: DataverseClient,
    fields: Mapping[str, str],
    *,
    message: str,
    title: str,
    contact: Regarding | None,
    contact_id: str,
    case_id: str,
) -> Ticket:
    """Create the case (and the contact unless `contact` is given); safe to repeat.

    Raises `DataverseError` when Dataverse refuses a record.
    """
    if contact is None:
        contact = create_contact(client, fields, record_id=contact_id)
    case = create_case(client, contact, title=title, description=message, record_id=case_id)
    row = client.retrieve(tables.INCIDENTS, case.id, select=["ticketnumber"])
    number = row.get("ticketnumber")
    if not isinstance(number, str) or not number:
        number = "CAS-" + guid(case.id).replace("-", "")[:8].upper()
    return Ticket(case=case, contact=contact, ticket_number=number)
