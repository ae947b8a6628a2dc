"""A contact's data on request: every chat about them exported as one JSON document, or
deleted (chats and their notes, the contact's messaging platform links; the contact record
only when asked).

A contact's chats are the `crmchat_chat` activities regarding the contact or one of the
contact's cases (record identification links a chat to both, connector/crm/regarding.py).
The caller passes a client that impersonates the CRM user asking (`as_user`), so Dataverse
itself decides what that user may read and delete: a user without read on contacts or
activities gets 403 (`Forbidden`), one with Basic read sees only their own chats, and
one without delete on activities cannot delete. Nothing here widens what the user may do.

Deleting is idempotent: a chat or note already gone (the retention job, another request,
an admin) is skipped, so a delete that stopped halfway finishes when asked again.
Presence records (the visitor's pages, from the live chat state) are exported through
`presence_of`; they hold no more than the chats and expire with the visitor's visit.
The service's own live-chat store keeps ended chats for a while (connector/crm/
retention.py); a delete drops there, through `forget_live`, the finished chats of every
visitor (browser) whose chats about the contact it deleted, once their CRM records are gone
(connector/web/privacy_api.py drops the visitor's presence record there too).

Every filter is built with `connector.dataverse.odata` (GUIDs as literals).

Errors: `connector.dataverse.errors` — `Forbidden` (403), `NotFound` (404, no such contact
or not visible to the caller), others as the client raises them.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from connector.crm import tables
from connector.crm.retention import ANNOTATIONS, delete_if_present
from connector.dataverse import odata

__all__ = [
    "CHAT_COLUMNS",
    "DeleteResult",
    "NOTE_COLUMNS",
    "delete_contact_data",
    "export_contact_data",
]

CONTACTS = "contacts"
# A person on Messenger, Instagram, WhatsApp or Viber linked to the contact.
PLATFORM_LINKS = "crmchat_platformlinks"
LINK_COLUMNS = [
    "crmchat_platformlinkid",
    "crmchat_name",
    "crmchat_channeltype",
    "crmchat_platformuserid",
    "_crmchat_channelaccountid_value",
]
INCIDENTS = "incidents"
CONTACT_COLUMNS = ["contactid", "fullname", "emailaddress1", "telephone1", "mobilephone"]
CHAT_COLUMNS = [
    "activityid",
    "subject",
    "actualstart",
    "actualend",
    "crmchat_transcript",
    "crmchat_visitordetails",
    "crmchat_visitorinfo",
    "crmchat_context",
    "crmchat_participantnames",
    "crmchat_rating",
    "crmchat_labels",
    "crmchat_visitorid",
    "_regardingobjectid_value",
]
# The attachment itself (documentbody, base64) travels with its note.
NOTE_COLUMNS = ["annotationid", "subject", "notetext", "filename", "mimetype", "documentbody"]
# Records per page read.
_PAGE_SIZE = 500
EXPORT_FORMAT = "crmchat.contact-data.v1"


@dataclass(frozen=True)
class DeleteResult:
    chats: int
    notes: int
    links: int
    contact: bool  # the contact record was deleted by this request
    live_chats: int = 0  # finished chats deleted from the service's live-chat store


def _contact(client: Any, contact_id: str) -> dict[str, Any]:
    row: dict[str, Any] = client.retrieve(CONTACTS, contact_id, select=CONTACT_COLUMNS)
    return row


def _chat_rows(client: Any, contact_id: str, columns: list[str]) -> list[dict[str, Any]]:
    """The contact's chats: regarding the contact, or regarding one of its cases."""
    regarding = [uuid.UUID(contact_id)]
    regarding += [
        uuid.UUID(str(row["incidentid"]))
        for row in client.list(
            INCIDENTS,
            select=["incidentid"],
            filter=odata.eq("_customerid_value", uuid.UUID(contact_id)),
            page_size=_PAGE_SIZE,
        )
    ]
    rows: list[dict[str, Any]] = []
    for record_id in regarding:
        rows += client.list(
            tables.CHATS,
            select=columns,
            filter=odata.eq("_regardingobjectid_value", record_id),
            orderby="actualstart asc",
            page_size=_PAGE_SIZE,
        )
    return rows


def _notes(client: Any, chat_id: str, columns: list[str]) -> list[dict[str, Any]]:
    return list(
        client.list(
            ANNOTATIONS,
            select=columns,
            filter=odata.eq("_objectid_value", uuid.UUID(chat_id)),
            page_size=_PAGE_SIZE,
        )
    )


def _links(client: Any, contact_id: str, columns: list[str]) -> list[dict[str, Any]]:
    return list(
        client.list(
            PLATFORM_LINKS,
            select=columns,
            filter=odata.eq("_crmchat_contactid_value", uuid.UUID(contact_id)),
            page_size=_PAGE_SIZE,
        )
    )


def _plain(row: dict[str, Any]) -> dict[str, Any]:
    """The row without the Web API's `@odata.*` annotations."""
    return {key: value for key, value in row.items() if "@" not in key}


def export_contact_data(
    client: Any,
    contact_id: str,
    *,
    now: datetime,
    presence_of: Callable[[str], dict[str, Any] | None] = lambda visitor_id: None,
) -> dict[str, Any]:
    """Everything CRM Chat holds about the contact, as one JSON-ready document.

    `client` impersonates the user asking. Raises NotFound when the contact does not
    exist (or the user may not see it), Forbidden when the user lacks a read privilege.
    """
    contact = _plain(_contact(client, contact_id))
    chats = []
    visitor_ids: list[str] = []
    for row in _chat_rows(client, contact_id, CHAT_COLUMNS):
        chat = _plain(row)
        chat["notes"] = [_plain(n) for n in _notes(client, str(row["activityid"]), NOTE_COLUMNS)]
        chats.append(chat)
        visitor_id = str(row.get("crmchat_visitorid") or "")
        if visitor_id and visitor_id not in visitor_ids:
            visitor_ids.append(visitor_id)
    presence = [found for found in map(presence_of, visitor_ids) if found is not None]
    return {
        "format": EXPORT_FORMAT,
        "exported_at": now.isoformat(),
        "contact": contact,
        "chats": chats,
        "platform_links": [_plain(row) for row in _links(client, contact_id, LINK_COLUMNS)],
        "presence": presence,
    }


def delete_contact_data(
    client: Any,
    contact_id: str,
    *,
    delete_contact: bool = False,
    forget_live: Callable[[str], int] = lambda visitor_id: 0,
) -> DeleteResult:
    """Delete the contact's chats with their notes and the contact's platform links; the
    contact too with `delete_contact`; then `forget_live(visitor_id)` for each visitor of
    those chats (returns how many of its finished chats the live store dropped).

    `client` impersonates the user asking. Raises NotFound when the contact does not exist
    (asking again after the contact was deleted is then a 404, not a second delete) and
    Forbidden when the user may not read or delete these records.
    """
    _contact(client, contact_id)
    chats = notes = links = 0
    for link in _links(client, contact_id, ["crmchat_platformlinkid"]):
        links += delete_if_present(client, PLATFORM_LINKS, str(link["crmchat_platformlinkid"]))
    visitor_ids: dict[str, None] = {}
    for row in _chat_rows(client, contact_id, ["activityid", "crmchat_visitorid"]):
        chat_id = str(row["activityid"])
        for note in _notes(client, chat_id, ["annotationid"]):
            notes += delete_if_present(client, ANNOTATIONS, str(note["annotationid"]))
        chats += delete_if_present(client, tables.CHATS, chat_id)
        if row.get("crmchat_visitorid"):
            visitor_ids[str(row["crmchat_visitorid"])] = None
    deleted = delete_if_present(client, CONTACTS, contact_id) if delete_contact else False
    # Only after Dataverse let this user delete them: a refused delete (Forbidden) raised.
    live_chats = sum(forget_live(visitor_id) for visitor_id in visitor_ids)
    return DeleteResult(
        chats=chats, notes=notes, links=links, contact=deleted, live_chats=live_chats
    )
