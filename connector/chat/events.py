"""The server's frames: event names in one place, and the builders of their dicts.

Events are `{"type": "<noun>.<verb>", ...}` (docs/protocol.md). Only `connector.chat.actions`
publishes them, after the state change they describe has been committed.
"""

from __future__ import annotations

import json
from typing import Any

__all__ = [
    "AGENTS_UPDATED",
    "AVAILABILITY",
    "CHAT_ACCEPTED",
    "CHAT_ENDED",
    "CHAT_OFFERED",
    "CHAT_QUEUED",
    "CHAT_RATED",
    "CHAT_STARTED",
    "CHAT_TIMEOUT",
    "CHAT_UNOFFERED",
    "CHAT_UPDATED",
    "CHAT_WAITING",
    "CHAT_WITHDRAWN",
    "ERROR",
    "HELLO_OK",
    "MESSAGE_CREATED",
    "PONG",
    "RESYNC",
    "SNAPSHOT",
    "SUPERVISOR_BOARD",
    "SUPERVISOR_BOARD_CHANGED",
    "TICKET_CREATED",
    "TYPING",
    "VISITOR_LEFT",
    "VISITOR_UPDATED",
    "Event",
    "error_event",
    "event",
    "json_frame",
]

Event = dict[str, Any]

HELLO_OK = "hello.ok"
SNAPSHOT = "snapshot"
AVAILABILITY = "availability"
# Every agent whose presence changed during one tick, in one frame (actions/agents.py).
AGENTS_UPDATED = "agents.updated"
VISITOR_UPDATED = "visitor.updated"
VISITOR_LEFT = "visitor.left"
CHAT_STARTED = "chat.started"
CHAT_OFFERED = "chat.offered"
CHAT_WITHDRAWN = "chat.withdrawn"
# Routing (actions/queues.py): the ring moved on from this agent, the chat still waits.
CHAT_UNOFFERED = "chat.unoffered"
# A chat entered its topic's queue: agents who may pick it up list it (Waiting chats).
CHAT_WAITING = "chat.waiting"
# To the visitor: their place in the queue and the estimated wait changed.
CHAT_QUEUED = "chat.queued"
CHAT_ACCEPTED = "chat.accepted"
CHAT_UPDATED = "chat.updated"
CHAT_ENDED = "chat.ended"
CHAT_RATED = "chat.rated"
CHAT_TIMEOUT = "chat.timeout"
TICKET_CREATED = "ticket.created"
# To supervisors' consoles: the whole board at connect, then only its rows that changed
# (actions/supervision.py).
SUPERVISOR_BOARD = "supervisor.board"
SUPERVISOR_BOARD_CHANGED = "supervisor.board_changed"
MESSAGE_CREATED = "message.created"
TYPING = "typing"
MESSAGE_READ = "message.read"
ERROR = "error"
PONG = "pong"
# To every socket of a process whose bus may have missed events (a lost Redis
# connection): reconnect, and so catch up from the last seq (docs/protocol.md).
RESYNC = "resync"


def event(type_: str, **fields: Any) -> Event:
    """An event dict: `{"type": type_, **fields}`."""
    return {"type": type_, **fields}


def error_event(code: str, message: str, *, ref: str | None = None, **extra: Any) -> Event:
    """An `error` frame; `ref` names the client_id or frame type it answers."""
    frame: Event = {"type": ERROR, "code": code, "message": message}
    if ref is not None:
        frame["ref"] = ref
    frame.update(extra)
    return frame


def json_frame(frame: Event) -> str:
    """The frame as the JSON text sent on a websocket (UTF-8, not ASCII-escaped)."""
    return json.dumps(frame, ensure_ascii=False)
