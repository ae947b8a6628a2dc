"""Where CRM Chat's records live in Dataverse: entity sets, navigation properties, limits.

The one module that knows Dataverse's names for the project's records (the solution's
`customizations.xml` and the standard tables). Everything else in `connector.crm` builds
its requests from these constants, so a renamed table or relationship is one edit here.

```python
client.create(CHATS, {BIND_CHAT_WIDGET: bind(WIDGETS, widget_id), ...}, record_id=chat_id)
```
"""

from __future__ import annotations

import uuid
from typing import Final, Literal

from connector.dataverse.odata import guid

__all__ = [
    "AGENTS",
    "AGENT_TOPICS",
    "BIND_CHAT_AGENT",
    "BIND_CHAT_TOPIC",
    "BIND_CHAT_WIDGET",
    "BIND_OWNER",
    "CHAT_PARTIES",
    "CHATS",
    "CONTACTS",
    "CONTACT_CASES",
    "HANDSHAKES",
    "INCIDENTS",
    "LABELS",
    "LEADS",
    "NOTES",
    "BIND_NOTE_CHAT",
    "PARTY_FROM",
    "PARTY_TO",
    "REGARDING_SETS",
    "RegardingTable",
    "SETTINGS",
    "SETTINGS_ID",
    "SNIPPETS",
    "SYSTEMUSERS",
    "TEAMS",
    "TOPICS",
    "WIDGETS",
    "WIDGET_TOPICS",
    "bind",
    "bind_regarding",
]

# Entity sets of the solution's tables.
AGENTS: Final = "crmchat_agents"
TOPICS: Final = "crmchat_topics"
WIDGETS: Final = "crmchat_widgets"
SNIPPETS: Final = "crmchat_snippets"
CHATS: Final = "crmchat_chats"  # the chat activity (activityid is the conversation id)
SETTINGS: Final = "crmchat_settingses"
HANDSHAKES: Final = "crmchat_handshakes"
LABELS: Final = "crmchat_labels"
# Notes (the standard `annotation` table); `objectid_<table>` points one at its record.
NOTES: Final = "annotations"
BIND_NOTE_CHAT: Final = "objectid_crmchat_chat@odata.bind"

# The one settings record lives at this fixed id (written by upsert, never twice).
SETTINGS_ID: Final = str(uuid.uuid5(uuid.NAMESPACE_URL, "https://crmchat/settings"))

# Entity sets of the standard tables.
CONTACTS: Final = "contacts"
LEADS: Final = "leads"
INCIDENTS: Final = "incidents"
SYSTEMUSERS: Final = "systemusers"
TEAMS: Final = "teams"

# N:N navigation properties (Dataverse names them after the relationship, on both sides).
AGENT_TOPICS: Final = "crmchat_agent_topic"
WIDGET_TOPICS: Final = "crmchat_widget_topic"

# 1:N navigation properties (the relationship's schema name, on the "one" side).
CONTACT_CASES: Final = "incident_customer_contacts"  # a contact's cases (incident.customerid)

# Single-valued navigation properties used in "<name>@odata.bind".
BIND_CHAT_WIDGET: Final = "crmchat_WidgetId@odata.bind"
BIND_CHAT_TOPIC: Final = "crmchat_TopicId@odata.bind"
BIND_CHAT_AGENT: Final = "crmchat_AgentId@odata.bind"
BIND_OWNER: Final = "ownerid@odata.bind"

# The chat's activity parties (collection-valued, deep-inserted with the chat) and their
# participationtypemask values (Microsoft Learn, "Activity party types").
CHAT_PARTIES: Final = "crmchat_chat_activity_parties"
PARTY_FROM: Final = 1  # Sender: the customer
PARTY_TO: Final = 2  # To Recipient: an agent's system user

RegardingTable = Literal["contact", "lead", "incident"]

# What a chat can be regarding, by logical name.
REGARDING_SETS: Final[dict[str, str]] = {
    "contact": CONTACTS,
    "lead": LEADS,
    "incident": INCIDENTS,
}

# The chat activity's logical name, part of its polymorphic regarding property names.
_CHAT_TABLE = "crmchat_chat"


def bind(entity_set: str, record_id: str | uuid.UUID) -> str:
    """``/entity_set(<id>)``: an ``@odata.bind`` value. Raises ValueError for a bad id."""
    return f"/{entity_set}({guid(record_id)})"


def bind_regarding(table: str, record_id: str | uuid.UUID) -> tuple[str, str]:
    """The chat activity's regarding property and value for a `table` record.

    E.g. ``("regardingobjectid_contact_crmchat_chat@odata.bind", "/contacts(<id>)")``.
    Raises ValueError for a table a chat cannot be regarding.
    """
    entity_set = REGARDING_SETS.get(table)
    if entity_set is None:
        raise ValueError(f"a chat cannot be regarding a {table!r} record")
    return f"regardingobjectid_{table}_{_CHAT_TABLE}@odata.bind", bind(entity_set, record_id)
