"""A contact's data on request (Bearer service token; the contact form's command bar).

GET  /api/privacy/contacts/<contact_id>/export   one JSON file (attachment): the contact,
                                                 each chat with its transcript and notes
                                                 (attachments included), platform links,
                                                 presence records
POST /api/privacy/contacts/<contact_id>/delete   {"delete_contact": false}
                                                 -> {"chats", "notes", "links", "contact"}

Every Dataverse call runs as the signed-in CRM user (`MSCRMCallerID`), so the user's own
privileges decide: without read on the contact or its activities the answer is 403
`forbidden`, without delete on activities (agents have none) a delete is 403 too. The
service's token is only who asks, never what they may do (connector/crm/contact_data.py).
"""

from __future__ import annotations

import json
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any

from flask import Blueprint, Response, current_app
from pydantic import BaseModel, ConfigDict, ValidationError

from connector.chat.errors import ChatUnavailable
from connector.chat.frames import GUID_PATTERN
from connector.chat.views import iso
from connector.crm.contact_data import delete_contact_data, export_contact_data
from connector.crm.retention import drop_conversation
from connector.dataverse import DataverseError
from connector.dataverse.errors import Forbidden as DataverseForbidden
from connector.dataverse.errors import NotFound as DataverseNotFound
from connector.services import services_of
from connector.web.auth import AGENT_ROLES, current_user, require_roles
from connector.web.errors import (
    ApiError,
    CrmError,
    Forbidden,
    InvalidInput,
    NotFound,
    json_body,
)

__all__ = ["bp"]

bp = Blueprint("privacy_api", __name__, url_prefix="/api/privacy")

# Who may ask at all; what they get is Dataverse's answer for them.
ASKING_ROLES = AGENT_ROLES | frozenset({"CRM Chat App User"})


class DeleteIn(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)  # "yes" is no true
    delete_contact: bool = False


def _checked_id(contact_id: str) -> str:
    if not GUID_PATTERN.fullmatch(contact_id):
        raise NotFound("There is no such contact.")
    return contact_id.lower()


def _caller_client() -> Any:
    return services_of(current_app).dataverse.as_user(current_user().id)


def _refused(error: DataverseError, doing: str) -> Exception:
    if isinstance(error, DataverseForbidden):
        return Forbidden(f"Your CRM privileges do not allow you to {doing}.")
    if isinstance(error, DataverseNotFound):
        return NotFound("There is no such contact.")
    return CrmError.from_dataverse(error, doing=doing)


def _presence_of(visitor_id: str) -> dict[str, Any] | None:
    presence = services_of(current_app).engine.state.visitor(visitor_id)
    if presence is None:
        return None
    found = asdict(presence)
    found.pop("connections", None)  # how many tabs are open now: not a record
    found["first_seen"], found["last_seen"] = iso(presence.first_seen), iso(presence.last_seen)
    return found


class LiveStateUnavailable(ApiError):
    code = "unavailable"
    http_status = 503


# Every finished chat, whenever it ended.
EVERYTHING = datetime.max.replace(tzinfo=UTC)


def _forget_live(visitor_id: str) -> int:
    """Drop the visitor's finished chats from the live-chat store (retention.py), and
    their presence record unless the engine uses it now (the visitor is on the site:
    the record is written again at once)."""
    engine = services_of(current_app).engine
    live = engine.state
    finished = live.finished_conversations(ended_before=EVERYTHING, visitor_id=visitor_id)
    dropped = sum(drop_conversation(live, conversation) for conversation in finished)
    try:
        with engine.reading():
            if visitor_id not in engine.visitors:
                live.delete_visitor(visitor_id)
    except ChatUnavailable as error:
        # Redis is away or busy: asking again finishes the delete (it is idempotent).
        raise LiveStateUnavailable(error.message) from error
    return dropped


@bp.get("/contacts/<contact_id>/export")
@require_roles(ASKING_ROLES)
def export(contact_id: str) -> Response:
    record_id = _checked_id(contact_id)
    try:
        document = export_contact_data(
            _caller_client(), record_id, now=datetime.now(UTC), presence_of=_presence_of
        )
    except DataverseError as error:
        raise _refused(error, "export this contact's chats") from error
    response = Response(json.dumps(document, indent=2), mimetype="application/json")
    response.headers["Content-Disposition"] = (
        f'attachment; filename="crmchat-contact-{record_id}.json"'
    )
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.post("/contacts/<contact_id>/delete")
@require_roles(ASKING_ROLES)
def delete(contact_id: str) -> dict[str, Any]:
    record_id = _checked_id(contact_id)
    try:
        body = DeleteIn.model_validate(json_body())
    except ValidationError as error:
        raise InvalidInput('Send {"delete_contact": true|false}.') from error
    try:
        result = delete_contact_data(
            _caller_client(),
            record_id,
            delete_contact=body.delete_contact,
            forget_live=_forget_live,
        )
    except DataverseError as error:
        raise _refused(error, "delete this contact's chats") from error
    return asdict(result)
