"""The agent console's HTTP API (Bearer service token, CRM Chat Agent role).

GET  /api/agent/snippets                      [{"name","text"}], by name
GET  /api/agent/crm                           {"tables": {"lead","incident","knowledgearticle":
                                              bool}}: which Dynamics 365 tables exist here
POST /api/agent/chats/<conversation_id>/crm   {"kind": "lead"|"contact"|"case"}
                                              -> {"regarding": {"table","id","name"}}
PUT  /api/agent/chats/<conversation_id>/contact {"contact_id"}: link another contact
                                              with the visitor's email (the Contact panel)
                                              -> {"contact": {"id","name"}}
DELETE /api/agent/chats/<conversation_id>/contact  unpair the chat's contact
PUT  /api/agent/chats/<conversation_id>/case {"case_id"}: assign the chat to a case of
                                              the agent's, the contact's or its account's
                                              (the Case panel) -> {"regarding": {…}}
GET  /api/agent/chats/<conversation_id>/history/<earlier_id>
                                              -> {"messages": [message…]}: an earlier chat
                                                 of this chat's visitor (the History card)

Making a CRM record from a chat: `lead` and `contact` are created from the visitor's
pre-chat fields. A `case` needs a customer, so when the chat is not yet linked to a
contact, the contact is created first from the same fields and the case is made for it
(the chat then regards the case). Asking again for the kind the chat already regards
answers that record instead of creating a second one. The chat's agents get
`chat.updated` with the new `regarding`. A lead or case in an organization without that
table (no Dynamics 365 Sales / Customer Service) is `409 records_unavailable`.
"""

from __future__ import annotations

import logging
from dataclasses import asdict
from typing import TYPE_CHECKING, Any, Literal

from flask import Blueprint, Response, current_app, jsonify, request
from pydantic import BaseModel, ConfigDict, Field, model_validator

from connector.chat.actions import conversations, records
from connector.chat.errors import ChatError
from connector.chat.frames import GUID_PATTERN, Guid
from connector.chat.model import Conversation, ConversationKind
from connector.chat.ports import AgentLike
from connector.crm import tables
from connector.crm.chat_cases import find_assignable_case
from connector.crm.contact_matches import find_match, visitor_email
from connector.dataverse import DataverseError
from connector.dataverse.odata import and_, contains, eq, or_
from connector.services import services_of
from connector.web.auth import AGENT_ROLES, current_user, require_roles
from connector.web.errors import ApiError, CrmError, Forbidden, NotFound, json_body
from connector.web.sockets import engine_of

if TYPE_CHECKING:
    from connector.chat.engine import ChatEngine

__all__ = ["bp"]

log = logging.getLogger(__name__)

bp = Blueprint("agent_api", __name__, url_prefix="/api/agent")

_TABLE_OF_KIND = {"lead": "lead", "contact": "contact", "case": "incident"}


class ContactLinkIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    contact_id: Guid


class CaseAssignIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    case_id: Guid


class CrmActionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    kind: Literal["lead", "contact", "case"]


class ContactSearchIn(BaseModel):
    q: str = Field(min_length=2, max_length=100)


class OutboundIn(BaseModel):
    """A contact, or a case (its contact is messaged; the chat regards the case)."""

    model_config = ConfigDict(extra="forbid")
    contact_id: str | None = Field(default=None, pattern=GUID_PATTERN.pattern)
    case_id: str | None = Field(default=None, pattern=GUID_PATTERN.pattern)
    account_id: str = Field(pattern=r"^[A-Za-z0-9-]{1,64}$")

    @model_validator(mode="after")
    def _one(self) -> OutboundIn:
        if (self.contact_id is None) == (self.case_id is None):
            raise ValueError("give either contact_id or case_id")
        return self


class TemplateSendIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    template_id: str = Field(pattern=GUID_PATTERN.pattern)
    parameters: list[str] = Field(default_factory=list, max_length=20)
    client_id: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")


class LinkContactIn(BaseModel):
    """Exactly one of a contact's or a lead's id."""

    model_config = ConfigDict(extra="forbid")
    contact_id: str | None = Field(default=None, pattern=GUID_PATTERN.pattern)
    lead_id: str | None = Field(default=None, pattern=GUID_PATTERN.pattern)

    @model_validator(mode="after")
    def _one(self) -> LinkContactIn:
        if (self.contact_id is None) == (self.lead_id is None):
            raise ValueError("give either contact_id or lead_id")
        return self


@bp.errorhandler(ChatError)
def _chat_error(error: ChatError) -> Response:
    response = jsonify({"error": {"code": error.code, "message": error.message}})
    response.status_code = error.http_status
    return response


def _me() -> AgentLike:
    profile = engine_of(current_app).directory.agent_for_user(current_user().id)
    if profile is None:
        raise Forbidden("You have no CRM Chat agent profile; ask your administrator.")
    return profile


def _my_visitor_chat(
    conversation_id: str, refusal: str
) -> tuple[ChatEngine, AgentLike, Conversation]:
    """The engine, the signed-in agent and their visitor chat `conversation_id`; NotFound
    for a chat that is not theirs, `invalid_input` (`refusal`) for an agent-to-agent one."""
    if not GUID_PATTERN.fullmatch(conversation_id):
        raise NotFound("There is no such chat.")
    engine = engine_of(current_app)
    me = _me()
    conversation = conversations.access_agent_chat(engine, me.agent_id, conversation_id.lower())
    if conversation.kind is not ConversationKind.VISITOR:
        raise ApiError(refusal, code="invalid_input")
    return engine, me, conversation


@bp.get("/snippets")
@require_roles(AGENT_ROLES)
def snippets() -> Response:
    _me()
    found = engine_of(current_app).directory.snippets().values()
    return jsonify([{"name": s.name, "text": s.text} for s in sorted(found, key=lambda s: s.name)])


# What each table the console can create or search needs, when it is absent.
_APP_OF_TABLE = {
    "lead": "Dynamics 365 Sales",
    "incident": "Dynamics 365 Customer Service",
    "knowledgearticle": "Dynamics 365 Customer Service",
}


def _present_tables() -> frozenset[str]:
    found = services_of(current_app).app_tables
    return frozenset(_APP_OF_TABLE) if found is None else found.present()


@bp.get("/crm")
@require_roles(AGENT_ROLES)
def crm_tables() -> dict[str, Any]:
    """Which of lead, incident and knowledgearticle this organization has (cached)."""
    present = _present_tables()
    return {"tables": {table: table in present for table in _APP_OF_TABLE}}


@bp.get("/chats/<conversation_id>/history/<earlier_id>")
@require_roles(AGENT_ROLES)
def earlier_chat(conversation_id: str, earlier_id: str) -> dict[str, Any]:
    if not (GUID_PATTERN.fullmatch(conversation_id) and GUID_PATTERN.fullmatch(earlier_id)):
        raise NotFound("There is no such chat.")
    engine = engine_of(current_app)
    messages = conversations.access_earlier_chat(
        engine, _me().agent_id, conversation_id.lower(), earlier_id.lower()
    )
    return {"messages": [{k: v for k, v in m.items() if k != "type"} for m in messages]}


@bp.post("/chats/<conversation_id>/crm")
@require_roles(AGENT_ROLES)
def create_crm_record(conversation_id: str) -> dict[str, Any]:
    body = CrmActionIn.model_validate(json_body())
    engine, me, conversation = _my_visitor_chat(
        conversation_id, "Only a chat with a visitor can become a CRM record."
    )
    current = conversation.regarding
    if current is not None and current.get("table") == _TABLE_OF_KIND[body.kind]:
        return {"regarding": current}
    table = _TABLE_OF_KIND[body.kind]
    if table in _APP_OF_TABLE and table not in _present_tables():
        error = ApiError(
            f"This organization has no {table} table: {_APP_OF_TABLE[table]} is not installed.",
            code="records_unavailable",
        )
        error.http_status = 409
        raise error

    from connector.crm import regarding as crm

    client = services_of(current_app).dataverse
    fields = dict(conversation.visitor_fields)
    subject = f"Chat with {conversation.visitor_name}"
    # The agent's records are theirs (ownerid), not the application user's that writes them.
    owner = tables.bind(tables.SYSTEMUSERS, me.user_id)
    contact: crm.Regarding | None = None
    try:
        if body.kind == "lead":
            record = crm.create_lead(client, fields, subject=subject, owner=owner)
        elif body.kind == "contact":
            record = contact = crm.create_contact(client, fields, owner=owner)
        else:
            if current is not None and current.get("table") == "contact":
                contact = crm.Regarding(table="contact", id=current["id"], name=current["name"])
            elif conversation.contact is not None:
                contact = crm.Regarding.from_dict({"table": "contact", **conversation.contact})
            else:
                contact = crm.create_contact(client, fields, owner=owner)
            record = crm.create_case(
                client,
                contact,
                title=subject,
                description=conversations.transcript_text(
                    engine, conversation.conversation_id, limit=crm.CASE_DESCRIPTION_CHARS
                ),
                owner=owner,
            )
    except DataverseError as error:
        log.warning("creating a %s from chat %s failed: %s", body.kind, conversation_id, error)
        raise CrmError.from_dataverse(error, doing=f"the {body.kind}") from error
    regarding = {key: str(value) for key, value in asdict(record).items()}
    conversations.do_set_regarding(
        engine,
        me.agent_id,
        conversation.conversation_id,
        regarding,
        contact={"id": contact.id, "name": contact.name} if contact is not None else None,
    )
    _link_channel_person(conversation, contact.to_dict() if contact is not None else regarding)
    return {"regarding": regarding}


# ----- a channel's person linked to an existing contact (connector.channels.links) -----
CONTACT_SEARCH_MAX = 10


def _link_channel_person(conversation: Conversation, record: dict[str, str]) -> None:
    """A channel's person: their later conversations find `record` by themselves."""
    if conversation.channel is None:
        return
    from connector.channels.links import do_link_person
    from connector.channels.shared import channels_of

    account = channels_of(current_app).accounts.get(str(conversation.channel["account"]))
    if account is not None:
        client = services_of(current_app).dataverse
        person = str(conversation.channel["person"])
        do_link_person(client, account, person, conversation.visitor_name, record)


def _channel_chat(conversation_id: str, me: AgentLike) -> Conversation:
    if not GUID_PATTERN.fullmatch(conversation_id):
        raise NotFound("There is no such chat.")
    engine = engine_of(current_app)
    conversation = conversations.access_agent_chat(engine, me.agent_id, conversation_id.lower())
    if conversation.channel is None:
        raise ApiError("Only a messaging channel's person is linked.", code="invalid_input")
    return conversation


# What the search reads of each table; a lead is Open (statecode 0) like a contact is
# Active, and the person may be known only as a lead (an enquiry, not yet a customer).
_SEARCHED = {
    "contact": (tables.CONTACTS, "contactid"),
    "lead": (tables.LEADS, "leadid"),
}


def _has_leads() -> bool:
    """Whether the organization has the lead table (Dynamics 365 Sales). `app_tables`
    (connector.crm.app_tables, discovered from EntityDefinitions) comes with the two
    solutions' work; without it every organization is taken to have leads."""
    tables = getattr(services_of(current_app), "app_tables", None)
    return tables is None or bool(tables.has("lead"))


def _search(client: Any, table: str, query: str) -> list[dict[str, str]]:
    entity_set, key = _SEARCHED[table]
    rows = client.list(
        entity_set,
        select=[key, "fullname", "emailaddress1", "mobilephone"],
        filter=and_(
            eq("statecode", 0),
            or_(
                contains("fullname", query),
                contains("emailaddress1", query),
                contains("mobilephone", query),
            ),
        ),
        orderby="fullname",
        top=CONTACT_SEARCH_MAX,
    )
    return [
        {
            "id": str(row[key]).lower(),
            "name": row.get("fullname") or "",
            "email": row.get("emailaddress1") or "",
            "phone": row.get("mobilephone") or "",
        }
        for row in rows
    ]


@bp.get("/chats/<conversation_id>/contacts")
@require_roles(AGENT_ROLES)
def search_contacts(conversation_id: str) -> dict[str, Any]:
    """Active contacts and open leads whose name, email or phone contains `q` (at most 10
    of each), read as the service's application user (docs/channels.md)."""
    me = _me()
    _channel_chat(conversation_id, me)
    query = ContactSearchIn.model_validate({"q": request.args.get("q", "")}).q
    client = services_of(current_app).dataverse
    try:
        leads = _search(client, "lead", query) if _has_leads() else []
        return {"contacts": _search(client, "contact", query), "leads": leads}
    except DataverseError as error:
        raise CrmError.from_dataverse(error, doing="the contact search") from error


@bp.post("/chats/<conversation_id>/link")
@require_roles(AGENT_ROLES)
def link_channel_person(conversation_id: str) -> dict[str, Any]:
    """Link the chat's person to an existing contact or lead: this chat regards it, and so
    will the person's later chats on that account."""
    me = _me()
    conversation = _channel_chat(conversation_id, me)
    body = LinkContactIn.model_validate(json_body())
    table, record_id = ("contact", body.contact_id) if body.contact_id else ("lead", body.lead_id)
    assert record_id is not None  # LinkContactIn takes exactly one
    if table == "lead" and not _has_leads():
        raise ApiError("This organization has no leads.", code="invalid_input")
    entity_set, _key = _SEARCHED[table]
    client = services_of(current_app).dataverse
    try:
        row = client.retrieve(entity_set, record_id, select=["fullname", "statecode"])
    except DataverseError as error:
        if error.status == 404:
            raise NotFound(f"There is no such {table}.", code=f"unknown_{table}") from error
        raise CrmError.from_dataverse(error, doing=f"the {table}") from error
    if row.get("statecode") != 0:
        raise NotFound(f"There is no such {table}.", code=f"unknown_{table}")
    regarding = {"table": table, "id": record_id.lower(), "name": row.get("fullname") or ""}
    contact = {"id": regarding["id"], "name": regarding["name"]} if table == "contact" else None
    conversations.do_set_regarding(
        engine_of(current_app),
        me.agent_id,
        conversation.conversation_id,
        regarding,
        contact=contact,
    )
    _link_channel_person(conversation, regarding)
    return {"regarding": regarding}


# ----- WhatsApp templates (connector.channels.templates) --------------------------------


def _channel_account(conversation: Conversation) -> Any:
    from connector.channels.shared import channels_of

    account = channels_of(current_app).accounts.get(str((conversation.channel or {})["account"]))
    if account is None or not account.enabled:
        raise NotFound("The chat's channel account is disabled or deleted.", code="unknown_account")
    return account


@bp.get("/chats/<conversation_id>/templates")
@require_roles(AGENT_ROLES)
def list_templates(conversation_id: str) -> dict[str, Any]:
    """The approved templates of the WhatsApp chat's account an agent can send."""
    from connector.channels.templates import approved_templates

    conversation = _channel_chat(conversation_id, _me())
    account = _channel_account(conversation)
    try:
        return {"templates": approved_templates(services_of(current_app).dataverse, account)}
    except DataverseError as error:
        raise CrmError.from_dataverse(error, doing="the templates") from error


@bp.post("/chats/<conversation_id>/template")
@require_roles(AGENT_ROLES)
def send_template(conversation_id: str) -> dict[str, Any]:
    """Send a WhatsApp template with its body parameters: it shows in the chat as the
    agent's message (the template filled in) and goes out like a reply. A resend of the
    same `client_id` sends nothing again."""
    from connector.channels.shared import channels_of
    from connector.channels.templates import TemplateRefused, find_template, template_message
    from connector.chat.actions.channels import do_agent_template

    me = _me()
    conversation = _channel_chat(conversation_id, me)
    body = TemplateSendIn.model_validate(json_body())
    account = _channel_account(conversation)
    try:
        choice = find_template(services_of(current_app).dataverse, account, body.template_id)
    except DataverseError as error:
        raise CrmError.from_dataverse(error, doing="the template") from error
    if choice is None:
        raise NotFound("There is no such approved template.", code="unknown_template")
    try:
        template, text = template_message(choice, body.parameters)
    except TemplateRefused as error:
        raise ApiError(str(error), code="invalid_input") from error
    engine = engine_of(current_app)
    seq = do_agent_template(
        engine,
        me.agent_id,
        conversation.conversation_id,
        client_id=body.client_id,
        text=text,
        claims=services_of(current_app).live.state,
    )
    if seq is not None:
        channels_of(current_app).bridge.send_template(conversation.conversation_id, seq, template)
    return {"sent": seq is not None, "text": text}


# ----- "send a new message": a conversation the agent starts on a channel -------------


def _reachable(people: list[dict[str, str]]) -> list[dict[str, Any]]:
    """The enabled accounts each linked person can be reached on (the rule in force is
    the chat's, `chat.channel.rules`, once it opens)."""
    from connector.channels.shared import channels_of

    accounts = channels_of(current_app).accounts
    found = []
    for person in people:
        account = accounts.get(person["account"])
        if account is None or not account.enabled:
            continue
        found.append(
            {
                "contact_id": person["contact"],
                "account_id": account.key,
                "channel": account.channel.value,
                "account_name": account.name,
                "person_id": person["person"],
                "person_name": person["name"],
            }
        )
    return found


class OutboundRecordIn(BaseModel):
    """The record a form's "Send a new message" opened the console for (at most one)."""

    model_config = ConfigDict(extra="forbid")
    contact_id: str | None = Field(default=None, pattern=GUID_PATTERN.pattern)
    case_id: str | None = Field(default=None, pattern=GUID_PATTERN.pattern)

    @model_validator(mode="after")
    def _at_most_one(self) -> OutboundRecordIn:
        if self.contact_id is not None and self.case_id is not None:
            raise ValueError("give contact_id or case_id, not both")
        return self


def _outbound_target(
    client: Any, *, contact_id: str | None, case_id: str | None
) -> tuple[str, dict[str, str] | None]:
    """The contact to message and, for a case, the case the conversation regards (its
    customer contact is messaged). DataverseError for a missing record."""
    if case_id is None:
        return str(contact_id).lower(), None
    case = client.retrieve(tables.INCIDENTS, case_id, select=["title", "_customerid_value"])
    regarding = {"table": "incident", "id": case_id.lower(), "name": case.get("title") or ""}
    return str(case.get("_customerid_value") or "").lower(), regarding


@bp.get("/outbound")
@require_roles(AGENT_ROLES)
def outbound_people() -> dict[str, Any]:
    """Contacts matching `q` (as the contact search) that wrote to us on a channel, each
    with the accounts they can be messaged on: nobody else can be messaged. With
    `contact_id` or `case_id` instead (a form's "Send a new message"), that contact, or
    the case's contact, and the case the conversation will regard."""
    from connector.channels.links import linked_people

    _me()
    record = OutboundRecordIn.model_validate(
        {k: request.args[k] for k in ("contact_id", "case_id") if k in request.args}
    )
    client = services_of(current_app).dataverse
    case: dict[str, str] | None = None
    try:
        if record.contact_id is None and record.case_id is None:
            query = ContactSearchIn.model_validate({"q": request.args.get("q", "")}).q
            contacts = _search(client, "contact", query)
        else:
            contact_id, case = _outbound_target(
                client, contact_id=record.contact_id, case_id=record.case_id
            )
            row = client.retrieve(
                tables.CONTACTS, contact_id, select=["fullname", "emailaddress1", "mobilephone"]
            )
            contacts = [
                {
                    "id": contact_id,
                    "name": row.get("fullname") or "",
                    "email": row.get("emailaddress1") or "",
                    "phone": row.get("mobilephone") or "",
                }
            ]
        reachable = _reachable(linked_people(client, [c["id"] for c in contacts]))
    except DataverseError as error:
        if error.status == 404:
            raise NotFound("There is no such contact or case.", code="unknown_contact") from error
        raise CrmError.from_dataverse(error, doing="the contact search") from error
    return {
        "people": [
            {**contact, "channels": [r for r in reachable if r["contact_id"] == contact["id"]]}
            for contact in contacts
            if any(r["contact_id"] == contact["id"] for r in reachable)
        ],
        "case": case,
    }


@bp.post("/outbound")
@require_roles(AGENT_ROLES)
def start_outbound() -> dict[str, Any]:
    """Open a conversation with a contact (or a case's contact) on one of the channel
    accounts they wrote to; the agent then writes, or sends a template, in it."""
    from connector.channels.links import linked_people
    from connector.channels.shared import channels_of
    from connector.chat.actions.channels import do_start_channel_chat

    me = _me()
    body = OutboundIn.model_validate(json_body())
    client = services_of(current_app).dataverse
    try:
        contact_id, regarding = _outbound_target(
            client, contact_id=body.contact_id, case_id=body.case_id
        )
        row = client.retrieve(tables.CONTACTS, contact_id, select=["fullname", "statecode"])
        people = linked_people(client, [contact_id])
    except DataverseError as error:
        if error.status == 404:
            raise NotFound("There is no such contact or case.", code="unknown_contact") from error
        raise CrmError.from_dataverse(error, doing="the contact") from error
    contact = {"id": contact_id, "name": row.get("fullname") or ""}
    person = next((p for p in people if p["account"] == body.account_id.lower()), None)
    account = channels_of(current_app).accounts.get(body.account_id.lower())
    if person is None or account is None or not account.enabled:
        raise ApiError(
            "This contact has not written to us on that channel account, so it cannot"
            " message them.",
            code="never_contacted",
        )
    conversation_id, opened = do_start_channel_chat(
        engine_of(current_app),
        me.agent_id,
        account,
        {"id": person["person"], "name": person["name"]},
        contact=contact,
        regarding=regarding or {"table": "contact", **contact},
    )
    return {"conversation_id": conversation_id, "opened": opened}


@bp.put("/chats/<conversation_id>/contact")
@require_roles(AGENT_ROLES)
def link_contact(conversation_id: str) -> dict[str, Any]:
    """Link one of the contacts with the visitor's email; any other id is `not_found`."""
    body = ContactLinkIn.model_validate(json_body())
    engine, me, conversation = _my_visitor_chat(
        conversation_id, "Only a chat with a visitor has a contact."
    )
    email = visitor_email(
        identity=conversation.identity,
        context=conversation.context,
        fields=conversation.visitor_fields,
    )
    try:
        contact = find_match(services_of(current_app).dataverse, email, body.contact_id)
    except DataverseError as error:
        log.warning(
            "checking contact %s for chat %s failed: %s", body.contact_id, conversation_id, error
        )
        raise CrmError.from_dataverse(error, doing="the contact") from error
    if contact is None:
        raise NotFound("That is not an active contact with this visitor's email.")
    records.do_link_contact(engine, me.agent_id, conversation.conversation_id, contact)
    return {"contact": {"id": contact.id, "name": contact.name}}


@bp.delete("/chats/<conversation_id>/contact")
@require_roles(AGENT_ROLES)
def unpair_contact(conversation_id: str) -> dict[str, Any]:
    if not GUID_PATTERN.fullmatch(conversation_id):
        raise NotFound("There is no such chat.")
    engine = engine_of(current_app)
    records.do_unpair_contact(engine, _me().agent_id, conversation_id.lower())
    return {"contact": None}


@bp.put("/chats/<conversation_id>/case")
@require_roles(AGENT_ROLES)
def assign_case(conversation_id: str) -> dict[str, Any]:
    """Make the chat regard a case the agent may pick; any other id is `not_found`."""
    body = CaseAssignIn.model_validate(json_body())
    engine, me, conversation = _my_visitor_chat(
        conversation_id, "Only a chat with a visitor regards a case."
    )
    contact_id = (conversation.contact or {}).get("id")
    try:
        case = find_assignable_case(
            services_of(current_app).dataverse,
            body.case_id,
            agent_user_id=me.user_id,
            contact_id=contact_id,
        )
    except DataverseError as error:
        log.warning("checking case %s for chat %s failed: %s", body.case_id, conversation_id, error)
        raise CrmError.from_dataverse(error, doing="the case") from error
    if case is None:
        raise NotFound("That is not an open case of yours, this contact's or its account's.")
    regarding = case.to_dict()
    conversations.do_set_regarding(engine, me.agent_id, conversation.conversation_id, regarding)
    return {"regarding": regarding}
