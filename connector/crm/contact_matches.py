"""The contacts a chat's visitor may be: the active contacts with the visitor's email.

Record identification links a chat to a contact only when exactly one matches
(`connector.crm.identification`); when several do, the agent picks one in the console's
Contact panel. The service links only one of these matches, so an agent cannot point a
chat, and the name it then shows them, at an unrelated record by sending its id.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from uuid import UUID

from connector.crm import tables
from connector.crm.identification import context_value
from connector.crm.regarding import Regarding
from connector.dataverse import DataverseClient
from connector.dataverse.odata import and_, eq, guid

__all__ = ["find_match", "visitor_email"]

# emailaddress1 holds 100 characters; a longer value matches nothing.
_MAX_EMAIL_CHARS = 100


def visitor_email(
    *,
    identity: Mapping[str, Any] | None,
    context: Mapping[str, Any],
    fields: Mapping[str, str],
) -> str:
    """The email the chat knows its visitor by: a verified identity's, else the page
    context's `Email`, else the pre-chat field (the order record identification uses);
    "" when none."""
    found = str((identity or {}).get("email") or "").strip()
    found = found or context_value(context, "Email") or str(fields.get("email") or "").strip()
    return found if len(found) <= _MAX_EMAIL_CHARS else ""


def find_match(client: DataverseClient, email: str, contact_id: str) -> Regarding | None:
    """The active contact `contact_id` when its `emailaddress1` is `email`, else None.

    Raises `DataverseError` when Dataverse fails.
    """
    if not email:
        return None
    rows = list(
        client.list(
            tables.CONTACTS,
            select=["contactid", "fullname"],
            filter=and_(
                eq("statecode", 0),
                eq("emailaddress1", email),
                eq("contactid", UUID(guid(contact_id))),
            ),
            top=1,
        )
    )
    if not rows:
        return None
    row = rows[0]
    return Regarding(table="contact", id=str(row["contactid"]), name=str(row.get("fullname") or ""))
