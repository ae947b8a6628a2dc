"""Files in a chat over HTTP (a socket frame holds 16 KiB): upload and download, for the
chat's visitor and its agents (connector/chat/actions/attachments.py has the rules).

    POST /api/widgets/<widget_id>/files                 multipart: visitor_id, token,
         client_id, file        -> {"seq", "attachment": {"id","name","type","size"}}
    POST /api/widgets/<widget_id>/files/<attachment_id> {"visitor_id","token"} -> the file
    POST /api/agent/chats/<conversation_id>/files       multipart: client_id, file (Bearer)
    GET  /api/agent/chats/<conversation_id>/files/<attachment_id>  the file (Bearer)

The visitor proves the chat with its resume token in the body, never the URL (tokens do
not belong in proxy logs). A download is served with the type its extension gives, as an
attachment, `nosniff` and a sandboxing CSP, so no browser runs anything in it. A body
over the design's limit (plus the form's few fields) is `413` before it is read whole.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import quote

from flask import Blueprint, Response, current_app, jsonify, request
from pydantic import BaseModel, ConfigDict, Field

from connector.chat.actions.attachments import (
    FileIn,
    StoredFile,
    access_agent_file,
    access_visitor_file,
    do_agent_file,
    do_visitor_file,
    visitor_chat,
)
from connector.chat.errors import ChatError
from connector.chat.frames import GUID_PATTERN, VisitorId
from connector.crm.attachments import MAX_ATTACHMENT_KB
from connector.web.auth import AGENT_ROLES, current_user, require_roles
from connector.web.errors import Forbidden, InvalidInput, NotFound, json_body
from connector.web.public_limits import check_origin
from connector.web.sockets import engine_of

__all__ = ["agent_bp", "bp", "file_response"]

bp = Blueprint("visitor_files", __name__, url_prefix="/api/widgets")
agent_bp = Blueprint("agent_files", __name__, url_prefix="/api/agent")

# The largest file, plus room for the multipart framing and the form's small fields.
MAX_UPLOAD_BYTES = MAX_ATTACHMENT_KB * 1024 + 16 * 1024
_CLIENT_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


class FileAccessIn(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    visitor_id: VisitorId
    token: str = Field(min_length=1, max_length=1000)


def _chat_error(error: ChatError) -> Response:
    response = jsonify({"error": {"code": error.code, "message": error.message}})
    response.status_code = error.http_status
    return response


bp.register_error_handler(ChatError, _chat_error)
agent_bp.register_error_handler(ChatError, _chat_error)


def _guid(value: str, what: str) -> str:
    if not GUID_PATTERN.fullmatch(value):
        raise NotFound(f"There is no such {what}.")
    return value.lower()


def _form_field(name: str, limit: int) -> str:
    value = request.form.get(name, "")
    if not value or len(value) > limit:
        raise InvalidInput(f"The form needs {name} (at most {limit} characters).")
    return value


def _file_in() -> FileIn:
    """The upload in the request: one file, and the sender's client_id."""
    request.max_content_length = MAX_UPLOAD_BYTES
    client_id = _form_field("client_id", 64)
    if not _CLIENT_ID.fullmatch(client_id):
        raise InvalidInput("client_id must be 1-64 characters [A-Za-z0-9_-].")
    upload = request.files.get("file")
    if upload is None:
        raise InvalidInput("Send the file in the form field 'file'.")
    return FileIn(
        name=upload.filename or "",
        declared_type=upload.mimetype or "",
        data=upload.read(),
        client_id=client_id,
    )


def file_response(stored: StoredFile) -> Response:
    """A chat's file as a download that no browser runs (also the platforms' fetch of an
    agent's file: connector/channels/webhooks.py)."""
    response = Response(stored.data, mimetype=stored.type)
    response.headers["Content-Disposition"] = (
        f"attachment; filename*=UTF-8''{quote(stored.name, safe='')}"
    )
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Content-Security-Policy"] = "sandbox; default-src 'none'"
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.post("/<widget_id>/files")
def visitor_upload(widget_id: str) -> Any:
    widget_id = _guid(widget_id, "chat")
    check_origin(widget_id)
    file = _file_in()
    engine = engine_of(current_app)
    body = FileAccessIn.model_validate(
        {"visitor_id": request.form.get("visitor_id", ""), "token": request.form.get("token", "")}
    )
    conversation_id = visitor_chat(
        engine, widget_id=widget_id, visitor_id=body.visitor_id, token=body.token
    )
    return jsonify(do_visitor_file(engine, conversation_id=conversation_id, file=file))


@bp.post("/<widget_id>/files/<attachment_id>")
def visitor_download(widget_id: str, attachment_id: str) -> Response:
    widget_id = _guid(widget_id, "chat")
    check_origin(widget_id)
    body = FileAccessIn.model_validate(json_body())
    engine = engine_of(current_app)
    conversation_id = visitor_chat(
        engine, widget_id=widget_id, visitor_id=body.visitor_id, token=body.token
    )
    return file_response(
        access_visitor_file(
            engine, conversation_id=conversation_id, attachment_id=_guid(attachment_id, "file")
        )
    )


def _agent_id() -> str:
    profile = engine_of(current_app).directory.agent_for_user(current_user().id)
    if profile is None:
        raise Forbidden("You have no CRM Chat agent profile; ask your administrator.")
    return profile.agent_id


@agent_bp.post("/chats/<conversation_id>/files")
@require_roles(AGENT_ROLES)
def agent_upload(conversation_id: str) -> Any:
    file = _file_in()
    return jsonify(
        do_agent_file(
            engine_of(current_app),
            agent_id=_agent_id(),
            conversation_id=_guid(conversation_id, "chat"),
            file=file,
        )
    )


@agent_bp.get("/chats/<conversation_id>/files/<attachment_id>")
@require_roles(AGENT_ROLES)
def agent_download(conversation_id: str, attachment_id: str) -> Response:
    return file_response(
        access_agent_file(
            engine_of(current_app),
            agent_id=_agent_id(),
            conversation_id=_guid(conversation_id, "chat"),
            attachment_id=_guid(attachment_id, "file"),
        )
    )
