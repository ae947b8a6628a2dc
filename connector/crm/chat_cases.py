"""Which case an agent may assign a chat to from the console's Case panel.

The panel searches cases with the agent's own permissions (`Xrm.WebApi`): theirs, the
chat contact's, the contact's account's. The service, which writes with its own
application user, assigns only a case of those three kinds, so a case id from anywhere
else (it is readable in any URL) links nothing and shows the agent no title.
"""

from __future__ import annotations

from uuid import UUID

from connector.crm import tables
from connector.crm.regarding import Regarding
from connector.dataverse import DataverseClient
from connector.dataverse.odata import and_, eq, guid

__all__ = ["find_assignable_case"]


def find_assignable_case(
    client: DataverseClient, case_id: str, *, agent_user_id: str, contact_id: str | None
) -> Regarding | None:
    """The active case `case_id` when the agent owns it, or its customer is the chat's
    contact or that contact's account; else None. Two requests at most.

    Raises `DataverseError` when Dataverse fails.
    """
    rows = list(
        client.list(
            tables.INCIDENTS,
            select=["incidentid", "title", "_ownerid_value", "_customerid_value"],
            filter=and_(eq("statecode", 0), eq("incidentid", UUID(guid(case_id)))),
            top=1,
        )
    )
    if not rows:
        return None
    row = rows[0]
    customer = str(row.get("_customerid_value") or "").lower()
    allowed = str(row.get("_ownerid_value") or "").lower() == agent_user_id.lower()
    if not allowed and contact_id:
        allowed = customer == contact_id.lower()
        if not allowed and customer:
            contact = client.retrieve(
                tables.CONTACTS, contact_id, select=["_parentcustomerid_value"]
            )
            allowed = str(contact.get("_parentcustomerid_value") or "").lower() == customer
    if not allowed:
        return None
    return Regarding(table="incident", id=str(row["incidentid"]), name=str(row.get("title") or ""))
