"""The supervisor's HTTP API (Bearer service token, a supervisor role: CRM Chat Supervisor
or an administrator's; docs/agent-workspace.md, "Supervisor").

GET /api/agent/supervisor/board   {"chats": [...], "queues": [...], "agents": [...]}: every
                                  open visitor chat, each topic's queue, every agent, now
GET /api/agent/supervisor/chats/<conversation_id>   {"messages": [message…]}: any chat

Joining a chat is the socket's `supervisor.join`; a private message to a chat's agent is
a `consult.start` on a chat the supervisor is not in.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, current_app, jsonify

from connector.chat.actions.supervision import access_supervised_chat, supervisor_board
from connector.chat.errors import ChatError
from connector.chat.frames import GUID_PATTERN
from connector.web.auth import SUPERVISOR_ROLES, require_roles
from connector.web.errors import NotFound
from connector.web.sockets import engine_of

__all__ = ["bp"]

bp = Blueprint("supervisor_api", __name__, url_prefix="/api/agent/supervisor")


@bp.errorhandler(ChatError)
def _supervisor_chat_error(error: ChatError) -> Response:
    response = jsonify({"error": {"code": error.code, "message": error.message}})
    response.status_code = error.http_status
    return response


@bp.get("/board")
@require_roles(SUPERVISOR_ROLES)
def supervisor_board_view() -> Any:
    response = jsonify(supervisor_board(engine_of(current_app)))
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.get("/chats/<conversation_id>")
@require_roles(SUPERVISOR_ROLES)
def supervised_chat_view(conversation_id: str) -> Any:
    if not GUID_PATTERN.fullmatch(conversation_id):
        raise NotFound("There is no such chat.")
    messages = access_supervised_chat(engine_of(current_app), conversation_id.lower())
    return jsonify({"messages": messages})
