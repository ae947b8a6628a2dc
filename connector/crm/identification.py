"""Record identification: which active contact (and case) a starting chat is about.

The Omnichannel rule (docs/protocol.md, "Record identification"): the visitor's `Email`
(from the context or the verified identity) is looked up in `contact.emailaddress1`,
else `Name` in `fullname`, else `Phone` in `mobilephone`. Only active contacts count
(statecode 0); exactly one match links it, several link none. When that contact has
exactly one active case, the case is linked too, and the chat is then regarding the case.

`lookup_key` (pure) picks what to search for; `identify` asks Dataverse in one request:
the contacts (at most two of them) with their active cases (at most two each) expanded.
Every filter is built with `connector.dataverse.odata`, never from strings.

```python
key = lookup_key(context, identity_email="ann@x.test")   # ("emailaddress1", "ann@x.test")
found = identify(client, key)                            # Identification(contact, case)
found.regarding                                          # the case if linked, else the contact
```
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from connector.crm import tables
from connector.crm.regarding import Regarding
from connector.dataverse import DataverseClient
from connector.dataverse.odata import and_, eq, guid

__all__ = [
    "MATCH_COLUMNS",
    "Identification",
    "context_value",
    "identify",
    "lookup_key",
]

# Context variable -> contact column, in the order they are tried.
MATCH_COLUMNS = (("Email", "emailaddress1"), ("Name", "fullname"), ("Phone", "mobilephone"))
# Longer values match no column (emailaddress1 holds 100, fullname 160, mobilephone 50).
_MAX_VALUE_CHARS = 160
_ACTIVE = eq("statecode", 0)
# A contact's active cases, at most two (one links the case, two link none).
_OPEN_CASES = f"{tables.CONTACT_CASES}($select=incidentid,title;$filter={_ACTIVE};$top=2)"


@dataclass(frozen=True)
class Identification:
    """What a chat is linked to; both None when nothing (or several) matched."""

    contact: Regarding | None = None
    case: Regarding | None = None

    @property
    def regarding(self) -> Regarding | None:
        """The case when one is linked, else the contact."""
        return self.case or self.contact


def context_value(context: Mapping[str, Any], name: str) -> str:
    """A context variable's text (plain or ``{"value": ...}``), matched case-insensitively
    by name; "" when absent or not text."""
    for key, raw in context.items():
        if key.casefold() != name.casefold():
            continue
        value = raw.get("value") if isinstance(raw, Mapping) else raw
        if isinstance(value, str | int | float) and not isinstance(value, bool):
            return " ".join(str(value).split())
    return ""


def lookup_key(
    context: Mapping[str, Any], *, identity_email: str | None = None
) -> tuple[str, str] | None:
    """The (contact column, value) to search for, or None when there is nothing to go on.

    A verified identity's email wins over the context (the caller refuses a context email
    that differs from it).
    """
    if identity_email and identity_email.strip():
        return "emailaddress1", identity_email.strip()
    for name, column in MATCH_COLUMNS:
        value = context_value(context, name)
        if value and len(value) <= _MAX_VALUE_CHARS:
            return column, value
    return None


def identify(
    client: DataverseClient, key: tuple[str, str] | None, *, cases: bool = True
) -> Identification:
    """The one active contact matching `key` and its one active case, in one request: the
    contacts (at most two) with their active cases (at most two each) expanded.
    `cases=False` where the organization has no case table (plain Dataverse): the contact
    only (expanding a relationship that does not exist is Dataverse's 400).

    Raises `DataverseError` when Dataverse fails.
    """
    if key is None:
        return Identification()
    column, value = key
    contacts = list(
        client.list(
            tables.CONTACTS,
            select=["contactid", "fullname"],
            filter=and_(_ACTIVE, eq(column, value)),
            expand=_OPEN_CASES if cases else None,
            top=2,
        )
    )
    if len(contacts) != 1:
        return Identification()
    row = contacts[0]
    contact = Regarding(
        table="contact", id=guid(str(row["contactid"])), name=str(row.get("fullname") or "")
    )
    open_cases = row.get(tables.CONTACT_CASES) or []
    if len(open_cases) != 1:
        return Identification(contact=contact)
    case = Regarding(
        table="incident",
        id=guid(str(open_cases[0]["incidentid"])),
        name=str(open_cases[0].get("title") or ""),
    )
    return Identification(contact=contact, case=case)
