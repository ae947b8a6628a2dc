"""A platform user linked to a contact or lead (`crmchat_platformlink`, one per account).

The first conversation of an unknown person links when the agent creates the contact or
lead from the chat (`do_link_person`, called by the chat's "create" action); every later
conversation of that person on that account finds the link when it opens (`find_link`)
and starts with the record as its regarding (and contact). A link is per account: a
Messenger id is page-scoped, so the same person has another id on another page.

Rows are read and written with the service's application user; the alternate key
`crmchat_platformlink_person` (account + platform user id) keeps one row per person even
when two chats write at once.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

from connector.dataverse.errors import DataverseError
from connector.dataverse.odata import and_, eq, guid, or_

from .accounts import ACCOUNTS_SET, CHANNEL_TYPE_VALUES
from .model import ChannelAccount

__all__ = ["LINKS_SET", "do_link_person", "find_link", "linked_people"]

log = logging.getLogger(__name__)

LINKS_SET = "crmchat_platformlinks"
_FORMATTED = "OData.Community.Display.V1.FormattedValue"
_CHOICE_OF = {channel: value for value, channel in CHANNEL_TYPE_VALUES.items()}
# The link's lookups, by the regarding table they stand for.
_LOOKUPS = {"contact": "_crmchat_contactid_value", "lead": "_crmchat_leadid_value"}
_BINDS = {"contact": ("crmchat_ContactId", "contacts"), "lead": ("crmchat_LeadId", "leads")}
_NAME_CHARS = 100


def _account_id(account: ChannelAccount) -> uuid.UUID | None:
    """The account's row id; None for an account that is not a Dataverse row (tests)."""
    try:
        return uuid.UUID(guid(account.key))
    except ValueError:
        return None


def find_link(
    client: Any, account: ChannelAccount, person_id: str, *, leads: bool = True
) -> dict[str, str] | None:
    """The record (`{"table", "id", "name"}`) the person is linked to on `account`, or
    None (no link, or Dataverse could not say: the chat opens unlinked, logged). A link
    with both a contact and a lead gives the contact. `leads` false: the organization
    has no lead table, so the link has no lead column either (only CRM Chat for
    Dynamics 365 adds it) and only the contact is read."""
    account_id = _account_id(account)
    if account_id is None:
        return None
    lookups = {t: c for t, c in _LOOKUPS.items() if leads or t != "lead"}
    try:
        rows = list(
            client.list(
                LINKS_SET,
                select=[*lookups.values()],
                filter=and_(
                    eq("_crmchat_channelaccountid_value", account_id),
                    eq("crmchat_platformuserid", person_id),
                    eq("statecode", 0),
                ),
                top=1,
                annotations=_FORMATTED,
            )
        )
    except DataverseError as error:
        log.warning("platform link for account %s not read: %s", account.key, error)
        return None
    if not rows:
        return None
    row = rows[0]
    for table, column in lookups.items():
        if row.get(column):
            name = str(row.get(f"{column}@{_FORMATTED}") or "")
            return {"table": table, "id": str(row[column]).lower(), "name": name}
    return None


def do_link_person(
    client: Any,
    account: ChannelAccount,
    person_id: str,
    person_name: str,
    regarding: dict[str, str],
) -> bool:
    """Link the person on `account` to the contact or lead `regarding`; True when written.

    A failure is logged and returns False: the record the agent made stays, only the
    next conversation will not find it by itself."""
    account_id = _account_id(account)
    bind = _BINDS.get(regarding.get("table", ""))
    if account_id is None or bind is None:
        return False
    data = {
        "crmchat_name": (person_name or person_id)[:_NAME_CHARS],
        "crmchat_channeltype": _CHOICE_OF[account.channel],
        f"{bind[0]}@odata.bind": f"/{bind[1]}({guid(regarding['id'])})",
    }
    try:
        rows = list(
            client.list(
                LINKS_SET,
                select=["crmchat_platformlinkid"],
                filter=and_(
                    eq("_crmchat_channelaccountid_value", account_id),
                    eq("crmchat_platformuserid", person_id),
                ),
                top=1,
            )
        )
        if rows:
            client.update(LINKS_SET, rows[0]["crmchat_platformlinkid"], data)
        else:
            client.create(
                LINKS_SET,
                {
                    **data,
                    "crmchat_platformuserid": person_id,
                    "crmchat_ChannelAccountId@odata.bind": f"/{ACCOUNTS_SET}({account_id})",
                },
            )
    except DataverseError as error:
        log.warning("platform link for account %s not written: %s", account.key, error)
        return False
    return True


def linked_people(client: Any, contact_ids: list[str]) -> list[dict[str, str]]:
    """The platform people linked to these contacts: `{"contact", "account", "person",
    "name"}` each, for "send a new message" (only someone who wrote to us on
    that account can be messaged there). DataverseError passes."""
    if not contact_ids:
        return []
    rows = client.list(
        LINKS_SET,
        select=[
            "_crmchat_contactid_value",
            "_crmchat_channelaccountid_value",
            "crmchat_platformuserid",
            "crmchat_name",
        ],
        filter=and_(
            eq("statecode", 0),
            or_(*(eq("_crmchat_contactid_value", uuid.UUID(guid(c))) for c in contact_ids)),
        ),
    )
    return [
        {
            "contact": str(row["_crmchat_contactid_value"]).lower(),
            "account": str(row["_crmchat_channelaccountid_value"]).lower(),
            "person": str(row["crmchat_platformuserid"]),
            "name": str(row.get("crmchat_name") or ""),
        }
        for row in rows
        if row.get("_crmchat_channelaccountid_value") and row.get("crmchat_platformuserid")
    ]
