"""Demo records for the embedded Dataverse, so `crmchat serve` is usable at once.

`seed_demo(dataverse_app)` creates two agents with their system users, two topics, five
widgets, three snippets, a few contacts, a case and labels in the embedded Dataverse.
Every record has a fixed GUID chosen here and is written create-only, so running it on
every start adds what is missing and never overwrites what a person changed in the app.
The records are written by the administrator (`admin@crmchat.local`, from the embedded
Dataverse's own seeding), as a person setting up CRM Chat would: the service's
application user may not create contacts.

| who / what      | record                                                        |
|-----------------|---------------------------------------------------------------|
| Sam Sales       | system user `sam@crmchat.local`, CRM Chat Agent, topic Sales  |
| Bea Support     | system user `bea@crmchat.local`, CRM Chat Agent, topic Support|
| Sales chat      | widget, topic Sales (the demo website, the Omnichannel page)  |
| Support chat    | widget, topic Support (the demo website's support page)       |
| Internal help   | widget, topic Sales, for the internal launcher: a verified    |
|                 | identity is required and there is no pre-chat form            |
| Proactive chat  | widget, topic Sales: invites to chat after a few seconds      |
| Leave a message | widget, topic Sales: offers a case when nobody answers        |
| snippets        | `#hello#`, `#thanks#`, `#hours#`                              |
| contacts        | Ann Smith (one active case), Ben Jones, Chloe Martin, and Bea |
|                 | Support, whose email is the CRM user Bea's (internal chat)    |
| labels          | VIP, Follow-up, Bug (once the solution has `crmchat_label`)   |
| channel accounts| one per channel (Messenger, Instagram, WhatsApp, Viber), topic|
|                 | Sales, credentials generated when first created (simulator)   |

The internal widget's topic is Sales so that Bea, a CRM user, can ask Sam for help: the
internal user and the answering agent are different people. Every widget this issue adds
answers through topic Sales, so the Support topic keeps its one widget.
"""

from __future__ import annotations

import json
import logging
import secrets
from dataclasses import dataclass
from typing import Any

from connector.crm.connection import DATAVERSE_PATH, EMBEDDED_ORIGIN
from connector.dataverse import (
    CallableTokenProvider,
    DataverseClient,
    PreconditionFailed,
    UpsertMode,
)
from connector.dataverse.transport import WsgiSession
from connector.dataverse_local import ADMIN_USER_ID, DataverseApp, add_user, issue_token

__all__ = [
    "AGENT_STATUS_AVAILABLE",
    "BEA_AGENT_ID",
    "BEA_USER_ID",
    "ANN_CASE_ID",
    "ANN_CONTACT_ID",
    "BEA_CONTACT_ID",
    "CASES",
    "CONTACTS",
    "DEMO_AGENTS",
    "DEMO_CHANNEL_ACCOUNTS",
    "DEMO_WIDGETS",
    "SALES_TOPIC_ID",
    "SALES_WIDGET_ID",
    "SAM_AGENT_ID",
    "SAM_USER_ID",
    "SNIPPETS",
    "SUPPORT_TOPIC_ID",
    "SUPPORT_WIDGET_ID",
    "TOPICS",
    "INTERNAL_WIDGET_ID",
    "LABELS",
    "MESSAGE_WIDGET_ID",
    "PROACTIVE_DELAY_SECS",
    "PROACTIVE_MESSAGE",
    "PROACTIVE_WIDGET_ID",
    "DemoAgent",
    "DemoWidget",
    "admin_client",
    "seed_demo",
]

log = logging.getLogger(__name__)

AGENT_ROLE_NAME = "CRM Chat Agent"
AGENT_STATUS_AVAILABLE = 100000000  # crmchat_agent.crmchat_status "Available"

SALES_TOPIC_ID = "0c5a1e50-7d1c-4e0a-9b51-5a1e50000001"
SUPPORT_TOPIC_ID = "0c5a1e50-7d1c-4e0a-9b51-5a1e50000002"
SAM_USER_ID = "0c5a1e50-7d1c-4e0a-9b51-5a1e50000101"
BEA_USER_ID = "0c5a1e50-7d1c-4e0a-9b51-5a1e50000102"
SAM_AGENT_ID = "0c5a1e50-7d1c-4e0a-9b51-5a1e50000201"
BEA_AGENT_ID = "0c5a1e50-7d1c-4e0a-9b51-5a1e50000202"
SALES_WIDGET_ID = "0c5a1e50-7d1c-4e0a-9b51-5a1e50000301"
SUPPORT_WIDGET_ID = "0c5a1e50-7d1c-4e0a-9b51-5a1e50000302"
INTERNAL_WIDGET_ID = "0c5a1e50-7d1c-4e0a-9b51-5a1e50000303"
PROACTIVE_WIDGET_ID = "0c5a1e50-7d1c-4e0a-9b51-5a1e50000304"
MESSAGE_WIDGET_ID = "0c5a1e50-7d1c-4e0a-9b51-5a1e50000305"
ANN_CONTACT_ID = "0c5a1e50-7d1c-4e0a-9b51-5a1e50000501"
BEA_CONTACT_ID = "0c5a1e50-7d1c-4e0a-9b51-5a1e50000504"
ANN_CASE_ID = "0c5a1e50-7d1c-4e0a-9b51-5a1e50000601"

# (id = the webhook key, crmchat_channeltype, name, platform id): one account per channel,
# answered by topic Sales. Their credentials are generated when the row is first created
# (never fixed here: the simulator reads them from Dataverse, as the service does).
DEMO_CHANNEL_ACCOUNTS: tuple[tuple[str, int, str, str], ...] = (
    ("0c5a1e50-7d1c-4e0a-9b51-5a1e50000801", 100000000, "Contoso on Messenger", "110000000000001"),
    ("0c5a1e50-7d1c-4e0a-9b51-5a1e50000802", 100000001, "@contoso", "17840000000000001"),
    ("0c5a1e50-7d1c-4e0a-9b51-5a1e50000803", 100000002, "Contoso +1 555 0100", "106540352242922"),
    ("0c5a1e50-7d1c-4e0a-9b51-5a1e50000804", 100000003, "Contoso bot", "Contoso"),
)
VIBER_CHANNEL_TYPE = 100000003
WHATSAPP_CHANNEL_TYPE = 100000002
# The demo WhatsApp number's business account (its templates are the simulator's).
DEMO_WABA_ID = "102290129340398"
# The demo Viber bot's answer to a person opening its chat (conversation_started).
DEMO_VIBER_WELCOME = "Hello from Contoso! Write to us and an agent will answer."

# Short enough to see in a demo, long enough to read the page first.
PROACTIVE_DELAY_SECS = 3
PROACTIVE_MESSAGE = "Hi! Looking for a bike? Ask us anything."
# The least the design allows: a demo should not keep anyone waiting for two minutes.
MESSAGE_ACCEPT_TIMEOUT_SECS = 10

# (id, name, colour)
TOPICS: tuple[tuple[str, str, str], ...] = (
    (SALES_TOPIC_ID, "Sales", "#0f6cbd"),
    (SUPPORT_TOPIC_ID, "Support", "#107c10"),
)


@dataclass(frozen=True)
class DemoAgent:
    user_id: str
    agent_id: str
    domain_name: str
    first_name: str
    last_name: str
    topic_id: str

    @property
    def full_name(self) -> str:
        return f"{self.first_name} {self.last_name}"


@dataclass(frozen=True)
class DemoWidget:
    widget_id: str
    name: str
    title: str
    topic_id: str
    # Design options beyond the title; everything else keeps its default (crm/design.py).
    options: tuple[tuple[str, Any], ...] = ()

    @property
    def design(self) -> dict[str, Any]:
        return {"title": self.title, **dict(self.options)}


DEMO_AGENTS: tuple[DemoAgent, ...] = (
    DemoAgent(SAM_USER_ID, SAM_AGENT_ID, "sam@crmchat.local", "Sam", "Sales", SALES_TOPIC_ID),
    DemoAgent(BEA_USER_ID, BEA_AGENT_ID, "bea@crmchat.local", "Bea", "Support", SUPPORT_TOPIC_ID),
)

DEMO_WIDGETS: tuple[DemoWidget, ...] = (
    DemoWidget(SALES_WIDGET_ID, "Sales chat", "Questions before you buy?", SALES_TOPIC_ID),
    DemoWidget(SUPPORT_WIDGET_ID, "Support chat", "Need help?", SUPPORT_TOPIC_ID),
    DemoWidget(
        INTERNAL_WIDGET_ID,
        "Internal help",
        "Chat with an agent",
        SALES_TOPIC_ID,
        # The launcher passes a verified CRM identity; a form asking for it would be noise.
        (("require_login", True), ("ask_name_email", False)),
    ),
    DemoWidget(
        PROACTIVE_WIDGET_ID,
        "Proactive chat",
        "Questions before you buy?",
        SALES_TOPIC_ID,
        (
            (
                "proactive",
                {"enabled": True, "delay_secs": PROACTIVE_DELAY_SECS, "message": PROACTIVE_MESSAGE},
            ),
        ),
    ),
    DemoWidget(
        MESSAGE_WIDGET_ID,
        "Leave a message",
        "Questions before you buy?",
        SALES_TOPIC_ID,
        (
            (
                "ticket_fallback",
                {"enabled": True, "accept_timeout_secs": MESSAGE_ACCEPT_TIMEOUT_SECS},
            ),
        ),
    ),
)

# (id, name as typed between # signs, text)
SNIPPETS: tuple[tuple[str, str, str], ...] = (
    ("0c5a1e50-7d1c-4e0a-9b51-5a1e50000401", "hello", "Hello! How can I help you today?"),
    ("0c5a1e50-7d1c-4e0a-9b51-5a1e50000402", "thanks", "Thank you for chatting with us!"),
    (
        "0c5a1e50-7d1c-4e0a-9b51-5a1e50000403",
        "hours",
        "We are here Monday to Friday, 9:00 to 17:00 (Central European Time).",
    ),
)

# (id, first name, last name, email, phone)
CONTACTS: tuple[tuple[str, str, str, str, str], ...] = (
    (ANN_CONTACT_ID, "Ann", "Smith", "ann@example.com", "+1 555 0101"),
    ("0c5a1e50-7d1c-4e0a-9b51-5a1e50000502", "Ben", "Jones", "ben@example.com", "+1 555 0102"),
    (
        "0c5a1e50-7d1c-4e0a-9b51-5a1e50000503",
        "Chloe",
        "Martin",
        "chloe@example.com",
        "+44 20 7946 0103",
    ),
    # One contact per CRM user who chats internally: record identification links to it.
    (BEA_CONTACT_ID, "Bea", "Support", "bea@crmchat.local", "+1 555 0104"),
)

# (id, customer contact id, title): Ann's one active case is linked to her chats.
CASES: tuple[tuple[str, str, str], ...] = (
    (ANN_CASE_ID, ANN_CONTACT_ID, "Order 1001 arrived with a bent wheel"),
)

# (id, name, colour)
LABELS: tuple[tuple[str, str, str], ...] = (
    ("0c5a1e50-7d1c-4e0a-9b51-5a1e50000701", "VIP", "#c50f1f"),
    ("0c5a1e50-7d1c-4e0a-9b51-5a1e50000702", "Follow-up", "#ca5010"),
    ("0c5a1e50-7d1c-4e0a-9b51-5a1e50000703", "Bug", "#8764b8"),
)


def _create_once(
    client: DataverseClient, entity_set: str, record_id: str, data: dict[str, Any]
) -> bool:
    """Create the record unless it exists; True when it was created now."""
    try:
        client.upsert(entity_set, record_id, data, mode=UpsertMode.CREATE_ONLY)
    except PreconditionFailed:
        return False
    return True


def _link_once(
    client: DataverseClient, entity_set: str, record_id: str, navigation: str, target_id: str
) -> None:
    """Associate `target_id` (a topic) through `navigation` unless already associated."""
    linked = client.list_related(entity_set, record_id, navigation, select=["crmchat_topicid"])
    if any(str(row.get("crmchat_topicid")) == target_id for row in linked):
        return
    client.associate(entity_set, record_id, navigation, "crmchat_topics", target_id)


def admin_client(dataverse_app: DataverseApp) -> DataverseClient:
    """A client of the embedded Dataverse `dataverse_app` (in process) as the administrator."""
    secret = dataverse_app.store.signing_secret
    tokens = CallableTokenProvider(lambda: issue_token(secret, user_id=ADMIN_USER_ID))
    return DataverseClient(
        f"{EMBEDDED_ORIGIN}{DATAVERSE_PATH}/", tokens, session=WsgiSession(dataverse_app)
    )


def seed_demo(dataverse_app: DataverseApp) -> None:
    """Create the demo users and records that are missing (see the module docstring).

    `dataverse_app` is the embedded Dataverse's `DataverseApp`: system users go straight
    into its store (a real environment gets them from Entra, not the Web API), records
    through the Web API. Raises `DataverseError` when Dataverse refuses a write; partial
    work is kept and completed by the next run.
    """
    store = dataverse_app.store
    client = admin_client(dataverse_app)
    agent_role = store.schema.role_named(AGENT_ROLE_NAME)
    role_ids = [agent_role.id] if agent_role is not None else []
    for agent in DEMO_AGENTS:
        add_user(
            store,
            domain_name=agent.domain_name,
            first_name=agent.first_name,
            last_name=agent.last_name,
            user_id=agent.user_id,
            role_ids=role_ids,
        )

    for topic_id, name, color in TOPICS:
        _create_once(
            client, "crmchat_topics", topic_id, {"crmchat_name": name, "crmchat_color": color}
        )

    for agent in DEMO_AGENTS:
        _create_once(
            client,
            "crmchat_agents",
            agent.agent_id,
            {
                "crmchat_name": agent.first_name,
                "crmchat_email": agent.domain_name,
                "crmchat_status": AGENT_STATUS_AVAILABLE,
                "crmchat_SystemUserId@odata.bind": f"/systemusers({agent.user_id})",
                # The agent edits their own profile (Basic write), so they own it.
                "ownerid@odata.bind": f"/systemusers({agent.user_id})",
            },
        )
        _link_once(client, "crmchat_agents", agent.agent_id, "crmchat_agent_topic", agent.topic_id)

    for widget in DEMO_WIDGETS:
        _create_once(
            client,
            "crmchat_widgets",
            widget.widget_id,
            {
                "crmchat_name": widget.name,
                "crmchat_enabled": True,
                "crmchat_design": json.dumps(widget.design),
            },
        )
        _link_once(
            client, "crmchat_widgets", widget.widget_id, "crmchat_widget_topic", widget.topic_id
        )

    for snippet_id, name, text in SNIPPETS:
        _create_once(
            client, "crmchat_snippets", snippet_id, {"crmchat_name": name, "crmchat_text": text}
        )

    for contact_id, first, last, email, phone in CONTACTS:
        _create_once(
            client,
            "contacts",
            contact_id,
            {"firstname": first, "lastname": last, "emailaddress1": email, "telephone1": phone},
        )

    # A plain Dataverse environment has no cases (no Dynamics 365 Customer Service).
    for case_id, contact_id, title in CASES if "incident" in store.schema.tables else ():
        _create_once(
            client,
            "incidents",
            case_id,
            {"title": title, "customerid_contact@odata.bind": f"/contacts({contact_id})"},
        )

    # Labels arrive with issue 4's solution; an older solution simply has none.
    if "crmchat_label" in store.schema.tables:
        for label_id, name, color in LABELS:
            _create_once(
                client, "crmchat_labels", label_id, {"crmchat_name": name, "crmchat_color": color}
            )
    for account_id, channel_type, name, platform_id in DEMO_CHANNEL_ACCOUNTS:
        credentials = (
            {
                "crmchat_authtoken": secrets.token_urlsafe(24),
                "crmchat_welcomemessage": DEMO_VIBER_WELCOME,
            }
            if channel_type == VIBER_CHANNEL_TYPE
            else {
                "crmchat_accesstoken": secrets.token_urlsafe(24),
                "crmchat_appsecret": secrets.token_urlsafe(24),
                "crmchat_verifytoken": secrets.token_urlsafe(24),
            }
        )
        if channel_type == WHATSAPP_CHANNEL_TYPE:
            credentials["crmchat_businessaccountid"] = DEMO_WABA_ID
        _create_once(
            client,
            "crmchat_channelaccounts",
            account_id,
            {
                "crmchat_name": name,
                "crmchat_channeltype": channel_type,
                "crmchat_platformid": platform_id,
                "crmchat_enabled": True,
                "crmchat_TopicId@odata.bind": f"/crmchat_topics({SALES_TOPIC_ID})",
                **credentials,
            },
        )
    log.info("demo records are in place")
