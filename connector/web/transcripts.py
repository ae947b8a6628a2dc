"""A visitor's transcript: download it, or have it mailed to an address they type.

    POST /api/widgets/<widget_id>/transcript        {"visitor_id","token"}
         -> 200 text/plain attachment (the chat's transcript)
    POST /api/widgets/<widget_id>/transcript/mail   {"visitor_id","token","email"}
         -> 200 {"sent": true}

`token` is the chat's resume token (`chat.started`); only its holder reads the chat
(connector/chat/actions/transcripts.py). The body is JSON, never the URL, so a token does
not land in proxy logs. The download is plain text with `nosniff` and as an attachment,
so no browser ever renders a message as HTML. The mail endpoint answers 404
`mail_not_configured` while no SMTP transport is set (connector/mail.py); a server that
refuses the mail is a 502 `mail_failed`. The rate limits are in connector/web/public_limits.py
(per address for both; per address and per chat for mail).

Errors::

    ApiError
    ├── InvalidInput      400 invalid_input        a bad body or mail address
    ├── NotFound          404 not_found            no such widget or chat (or not yours)
    ├── MailNotConfigured 404 mail_not_configured  the service has no mail transport
    └── MailFailed        502 mail_failed          the SMTP server did not take the mail
"""

from __future__ import annotations

import logging
from typing import Annotated

from flask import Blueprint, Response, current_app, jsonify
from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from connector.chat.actions.transcripts import VisitorTranscript, access_visitor_transcript
from connector.chat.errors import ChatNotFound
from connector.chat.frames import GUID_PATTERN, VisitorId
from connector.mail import MAX_ADDRESS_CHARS, MailError, is_mail_address, mail_transport
from connector.services import services_of
from connector.web.errors import ApiError, NotFound, json_body
from connector.web.public_limits import check_origin
from connector.web.sockets import engine_of

__all__ = ["bp", "mail_enabled"]

log = logging.getLogger(__name__)

bp = Blueprint("transcripts", __name__, url_prefix="/api/widgets")


class MailNotConfigured(ApiError):
    code = "mail_not_configured"
    http_status = 404


class MailFailed(ApiError):
    code = "mail_failed"
    http_status = 502


def _mail_address(value: str) -> str:
    if not is_mail_address(value):
        raise ValueError("not a mail address like ann@example.com")
    return value


class TranscriptIn(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    visitor_id: VisitorId
    token: str = Field(min_length=1, max_length=1000)


class TranscriptMailIn(TranscriptIn):
    email: Annotated[str, Field(max_length=MAX_ADDRESS_CHARS), AfterValidator(_mail_address)]


def mail_enabled() -> bool:
    """Whether the service can mail transcripts (the widget's config says so)."""
    return mail_transport(services_of(current_app).settings) is not None


def _transcript(widget_id: str, body: TranscriptIn) -> VisitorTranscript:
    if not GUID_PATTERN.fullmatch(widget_id):
        raise NotFound("There is no such chat.")
    check_origin(widget_id.lower())
    try:
        return access_visitor_transcript(
            engine_of(current_app),
            widget_id=widget_id.lower(),
            visitor_id=body.visitor_id,
            token=body.token,
        )
    except ChatNotFound as error:
        raise NotFound(error.message) from None


@bp.post("/<widget_id>/transcript")
def download_transcript(widget_id: str) -> Response:
    transcript = _transcript(widget_id, TranscriptIn.model_validate(json_body()))
    response = Response(transcript.text + "\n", mimetype="text/plain")
    response.headers["Content-Disposition"] = (
        f'attachment; filename="chat-{transcript.conversation_id[:8]}.txt"'
    )
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.post("/<widget_id>/transcript/mail")
def mail_transcript(widget_id: str) -> Response:
    transport = mail_transport(services_of(current_app).settings)
    if transport is None:
        raise MailNotConfigured("This service does not send mail.")
    body = TranscriptMailIn.model_validate(json_body())
    transcript = _transcript(widget_id, body)
    # The widget's name goes into a header: one line, and short.
    name = " ".join(transcript.widget_name.split())[:80]
    subject = f"Your chat transcript ({name})" if name else "Your chat transcript"
    try:
        transport.send(to=body.email, subject=subject, text=transcript.text + "\n")
    except MailError as error:
        log.warning("mailing a transcript failed: %s", error)
        raise MailFailed("The transcript could not be sent. Please try again later.") from None
    return jsonify({"sent": True})
