"""The widget's public API: `GET /api/widgets/<widget_id>/config` (CORS *, cached 30 s).

Answers the widget's published design (with its chat options), the topics a visitor may
pick, and whether a chat can start right now (`available`: the widget and the
organisation's chat switch are on, it offers a topic, and an online, Available agent
shares one).
The design comes from the Directory's cache, so this never waits on Dataverse in steady
state. An ETag lets the loader revalidate for free.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from flask import Blueprint, Response, current_app, jsonify, request

from connector.chat.actions import conversations
from connector.chat.frames import GUID_PATTERN
from connector.crm.hours import takes_offline_messages
from connector.web.addresses import socket_base_url
from connector.web.embed import versioned_path
from connector.web.errors import NotFound
from connector.web.public_limits import check_origin, design_of
from connector.web.sockets import engine_of
from connector.web.transcripts import mail_enabled

__all__ = ["CONFIG_MAX_AGE_SECS", "bp"]

bp = Blueprint("widget_api", __name__, url_prefix="/api/widgets")

# Availability changes when agents come and go; live updates reach open widgets over the
# socket, so a page load may use an answer this old.
CONFIG_MAX_AGE_SECS = 30


@bp.after_request
def _allow_any_origin(response: Response) -> Response:
    # The widget runs on customers' sites; the config is public, so any origin may read it.
    response.headers["Access-Control-Allow-Origin"] = "*"
    response.headers["Access-Control-Expose-Headers"] = "ETag"
    return response


def _socket_url(widget_id: str) -> str:
    # The widget in the URL lets the socket's upgrade be checked against the widget's
    # allowed domains and counted per widget (connector/web/public_limits.py).
    return f"{socket_base_url()}/ws/visitor?widget={widget_id}"


@bp.get("/<widget_id>/config")
def widget_config(widget_id: str) -> Response:
    if not GUID_PATTERN.fullmatch(widget_id):
        raise NotFound("There is no such widget.")
    status = conversations.widget_status(engine_of(current_app), widget_id.lower())
    if status is None:
        raise NotFound("There is no such widget.")
    engine = engine_of(current_app)
    widget, available = status
    check_origin(widget.widget_id)
    topics = engine.directory.topics()
    offered = sorted(
        (topics[t] for t in widget.topic_ids if t in topics),
        key=lambda t: (t.name.casefold(), t.topic_id),
    )
    body: dict[str, Any] = {
        "widget_id": widget.widget_id,
        # The organisation-wide switch turns every widget off.
        "enabled": widget.enabled and engine.directory.chat_enabled(),
        "available": available and bool(offered),
        "topics": [{"id": t.topic_id, "name": t.name, "color": t.color} for t in offered],
        "design": widget.design.model_dump(mode="json"),
        "socket_url": _socket_url(widget.widget_id),
        # Versioned, so browsers keep it for a year (connector/web/embed.py).
        "script_url": versioned_path("widget.js"),
        # The transcript buttons (extras.js, loaded when a chat ends); mail only when the
        # service has a mail transport.
        "extras_url": versioned_path("extras.js"),
        "transcript": {"mail": mail_enabled()},
        # Closed now (operating hours) with the message form as the offline mode.
        "offline_form": takes_offline_messages(widget.design, engine.clock()),
    }
    text = json.dumps(body, sort_keys=True, ensure_ascii=False)
    response = jsonify(body)
    response.set_etag(hashlib.sha256(text.encode()).hexdigest()[:32])
    response.cache_control.public = True
    response.cache_control.max_age = CONFIG_MAX_AGE_SECS
    if design_of(widget.design).allowed_domains:
        # The answer depends on the page's site: caches must not hand one site's to another.
        response.vary.add("Origin")
    response.make_conditional(request)
    return response
