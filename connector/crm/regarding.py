"""Records an agent creates from a chat: a lead, a contact, or a case for a contact.

The visitor's pre-chat fields are mapped by name: ``firstname``, ``lastname``, ``email``
(emailaddress1), ``phone``/``telephone``/``tel`` (telephone1) and, on a lead,
``company`` (companyname). Values are trimmed and cut to the column's length; a lead's
description lists every other field. Field values only ever travel in request bodies.

Pass `record_id` (a GUID the caller chose, e.g. derived from the conversation id) to make
a create safe to repeat: it is a create-only upsert, and when the record exists already
the existing one is returned instead of a second one being made.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, cast

from connector.crm import tables
from connector.crm.tables import RegardingTable
from connector.dataverse import DataverseClient, PreconditionFailed
from connector.dataverse.odata import guid

__all__ = [
    "CASE_DESCRIPTION_CHARS",
    "CASE_ORIGIN_WEB",
    "Regarding",
    "create_case",
    "create_contact",
    "create_lead",
]

# incident.caseorigincode: 3 is "Web" in the standard option set.
CASE_ORIGIN_WEB = 3
# lead.leadsourcecode: 8 is "Web".
LEAD_SOURCE_WEB = 8
# When the visitor gave no name at all (lastname is the name Dataverse shows).
NAMELESS = "Visitor"

# Column lengths of the standard tables (reference/dataverse.md §4 and the solution).
_NAME_CHARS = 50
_EMAIL_CHARS = 100
_PHONE_CHARS = 50
_COMPANY_CHARS = 100
_LEAD_SUBJECT_CHARS = 300
_CASE_TITLE_CHARS = 200
_DESCRIPTION_CHARS = 2000
# incident.description holds 2000 characters: a transcript put there is cut to fit.
CASE_DESCRIPTION_CHARS = _DESCRIPTION_CHARS

_PHONE_KEYS = ("phone", "telephone", "tel")
_MAPPED_KEYS = frozenset({"firstname", "lastname", "email", "company", *_PHONE_KEYS})


@dataclass(frozen=True)
class Regarding:
    """The record a chat is about, as the protocol's ``{"table","id","name"}``."""

    table: RegardingTable
    id: str
    name: str

    def to_dict(self) -> dict[str, str]:
        """The protocol's JSON shape."""
        return {"table": self.table, "id": self.id, "name": self.name}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Regarding:
        """Read `to_dict`'s shape back. Raises ValueError for an unknown table or a bad id."""
        table = str(data["table"])
        if table not in tables.REGARDING_SETS:
            raise ValueError(f"a chat cannot be regarding a {table!r} record")
        return cls(
            table=cast(RegardingTable, table),
            id=guid(str(data["id"])),
            name=str(data.get("name") or ""),
        )


def _value(fields: Mapping[str, str], *keys: str, limit: int) -> str:
    for key in keys:
        raw = fields.get(key)
        if isinstance(raw, str) and raw.strip():
            return " ".join(raw.split())[:limit]
    return ""


def _person(fields: Mapping[str, str]) -> tuple[dict[str, str], str]:
    """The name, email and phone columns of a contact or lead, and the person's name."""
    first = _value(fields, "firstname", limit=_NAME_CHARS)
    last = _value(fields, "lastname", limit=_NAME_CHARS)
    if not first and not last:
        last = NAMELESS
    data = {"lastname": last}
    if first:
        data["firstname"] = first
    email = _value(fields, "email", limit=_EMAIL_CHARS)
    if email:
        data["emailaddress1"] = email
    phone = _value(fields, *_PHONE_KEYS, limit=_PHONE_CHARS)
    if phone:
        data["telephone1"] = phone
    return data, " ".join(part for part in (first, last) if part)


def _own(data: dict[str, Any], owner: str | None) -> None:
    """Set the record's owner by `ownerid@odata.bind`; a chat's records belong to its
    agent (or team), not to the service's application user that writes them."""
    if owner is not None:
        data[tables.BIND_OWNER] = owner


def _create(
    client: DataverseClient, entity_set: str, data: dict[str, Any], record_id: str | None
) -> str:
    if record_id is None:
        return client.create(entity_set, data)
    try:
        return client.create(entity_set, data, record_id=record_id)
    except PreconditionFailed:
        # Made by an earlier call with the same id: that one is the record.
        return guid(record_id)


def create_lead(
    client: DataverseClient,
    fields: Mapping[str, str],
    *,
    subject: str,
    owner: str | None = None,
    record_id: str | uuid.UUID | None = None,
) -> Regarding:
    """Create a lead (source Web) from the visitor's pre-chat fields, owned by `owner`
    (an `ownerid` bind such as "/systemusers(<id>)"; None: the caller owns it).

    Raises `DataverseError` when Dataverse refuses it.
    """
    person, name = _person(fields)
    data: dict[str, Any] = dict(person)
    data["subject"] = " ".join(subject.split())[:_LEAD_SUBJECT_CHARS] or "Chat"
    data["leadsourcecode"] = LEAD_SOURCE_WEB
    company = _value(fields, "company", "companyname", limit=_COMPANY_CHARS)
    if company:
        data["companyname"] = company
    extra = [
        f"{key}: {value.strip()}"
        for key, value in fields.items()
        if key not in _MAPPED_KEYS
        and key != "companyname"
        and isinstance(value, str)
        and value.strip()
    ]
    if extra:
        data["description"] = "\n".join(extra)[:_DESCRIPTION_CHARS]
    _own(data, owner)
    rid = None if record_id is None else guid(record_id)
    lead_id = _create(client, tables.LEADS, data, rid)
    return Regarding(table="lead", id=lead_id, name=name)


def create_contact(
    client: DataverseClient,
    fields: Mapping[str, str],
    *,
    owner: str | None = None,
    record_id: str | uuid.UUID | None = None,
) -> Regarding:
    """Create a contact from the visitor's pre-chat fields, owned by `owner` (see
    `create_lead`).

    Raises `DataverseError` when Dataverse refuses it.
    """
    person, name = _person(fields)
    data: dict[str, Any] = dict(person)
    _own(data, owner)
    rid = None if record_id is None else guid(record_id)
    contact_id = _create(client, tables.CONTACTS, data, rid)
    return Regarding(table="contact", id=contact_id, name=name)


def create_case(
    client: DataverseClient,
    contact: Regarding,
    *,
    title: str,
    description: str,
    owner: str | None = None,
    record_id: str | uuid.UUID | None = None,
) -> Regarding:
    """Create a case (origin Web) for `contact`, owned by `owner` (see `create_lead`).

    Raises ValueError when `contact` is not a contact, `DataverseError` when Dataverse
    refuses the case.
    """
    if contact.table != "contact":
        raise ValueError(f"a case needs a contact, not a {contact.table}")
    clean_title = " ".join(title.split())[:_CASE_TITLE_CHARS] or "Chat"
    data: dict[str, Any] = {
        "title": clean_title,
        "customerid_contact@odata.bind": tables.bind(tables.CONTACTS, contact.id),
        "caseorigincode": CASE_ORIGIN_WEB,
    }
    if description.strip():
        data["description"] = description.strip()[:_DESCRIPTION_CHARS]
    _own(data, owner)
    rid = None if record_id is None else guid(record_id)
    case_id = _create(client, tables.INCIDENTS, data, rid)
    return Regarding(table="incident", id=case_id, name=clean_title)
