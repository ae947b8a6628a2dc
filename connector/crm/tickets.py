"""Ticket fallback: a visitor's message becomes a case when no agent could chat.

`create_ticket` makes (or reuses the identified) contact and an incident for it: the title
says who wrote and what about (topic, name, the message's start), the message is the
description, origin Web; both are owned by the widget's owner. Both records get
ids the caller derives from the visitor and the frame's `client_id`, so sending the same
ticket twice makes one contact and one case (create-only upserts).

The answer is the case's `ticketnumber`, which Dataverse autonumbers ("CAS-01001-X1Y2Z3";
one more GET). Only when none came back is the number ``CAS-`` and the first eight hex
digits of the case id, upper case.

Where the organization has no case table (plain Dataverse, without Dynamics 365 Customer
Service: `connector.crm.app_tables`), `message_chat` makes the message a chat activity
regarding the contact instead (the caller queues it in the outbox, as a finished chat);
the ticket then has no case and no number.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from connector.crm import tables
from connector.crm.chat_activity import FinishedChat
from connector.crm.regarding import Regarding, create_case, create_contact
from connector.dataverse import DataverseClient
from connector.dataverse.odata import guid

__all__ = [
    "TICKET_NAMESPACE",
    "Ticket",
    "create_ticket",
    "message_chat",
    "ticket_ids",
    "ticket_title",
]

# uuid5 namespace of the ids of tickets' records (idempotent on visitor + client_id).
TICKET_NAMESPACE = uuid.UUID("0b7f1f0e-5a52-4c4e-9d7a-6f3c2b8f1c11")
# How much of the message a case title quotes: enough to tell cases apart in a list view.
_TITLE_EXCERPT_CHARS = 80


@dataclass(frozen=True)
class Ticket:
    case: Regarding | None  # None where there is no case table
    contact: Regarding
    ticket_number: str  # "" without a case


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
    cases: bool = True,
) -> Ticket:
    """Create the case (and the contact unless `contact` is given); safe to repeat.
    With `cases=False` (no case table) only the contact: the caller records the message
    as a chat activity regarding it (`message_chat`).

    Both records are owned by `owner` (an `ownerid` bind; the widget's owner), else by the
    service's application user. Raises `DataverseError` when Dataverse refuses a record.
    """
    if contact is None:
        contact = create_contact(client, fields, owner=owner, record_id=contact_id)
    if not cases:
        return Ticket(case=None, contact=contact, ticket_number="")
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


_SYSTEMUSER_BIND = re.compile(r"^/systemusers\(([0-9a-fA-F-]{36})\)$")


def message_chat(
    *,
    message_id: str,
    contact: Regarding,
    fields: Mapping[str, str],
    message: str,
    topic: str,
    widget_id: str | None,
    visitor_id: str,
    owner: str | None,
    at: datetime,
) -> FinishedChat:
    """The visitor's message as a chat activity regarding `contact` (and with it as the
    From party, so it is on the contact's timeline), where there is no case to hold it.
    `message_id` is the case id the message would have had: the outbox key and the
    activity id derive from it, so sending the same message twice writes one."""
    name = contact.name or " ".join(
        part for part in (fields.get("firstname"), fields.get("lastname")) if part
    )
    owned = _SYSTEMUSER_BIND.fullmatch(owner or "")
    return FinishedChat(
        conversation_id=message_id,
        widget_id=widget_id,
        topic_names=[topic] if topic else [],
        visitor_name=name,
        visitor_fields=dict(fields),
        visitor_id=visitor_id,
        page="",
        ip="",
        started_at=at,
        accepted_at=None,
        ended_at=at,
        owner_user_id=owned.group(1).lower() if owned else None,
        participants=[],
        rating=None,
        transcript=[
            {
                "sender": {"kind": "visitor", "name": name},
                "text": message,
                "sent_at": at.isoformat(),
            }
        ],
        regarding=contact,
        contact={"id": contact.id, "name": contact.name},
    )
