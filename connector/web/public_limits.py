"""Abuse limits on the public endpoints a visitor's browser calls without signing in.

- Rate limits (flask-limiter): the widget config and visitor socket connects, each per
  client address and per widget. Storage is in memory for one process, Redis
  (`CRMCHAT_REDIS_URL`) when several share the work, so every process counts the same hits.
  A refused request is a 429 `rate_limited` with Retry-After (connector/web/errors.py).
- Transcripts: downloads per address; mails per address and per chat.
- Chat starts and tickets (`chat.start`, `ticket.create` frames on the visitor socket):
  per address and per widget, in the same storage (`frame_limited`, called by
  connector/web/sockets.py before the engine acts), answered by an `error` frame
  `rate_limited` with `retry_after_ms`.
- Allowed domains (the widget design's `allowed_domains`): a visitor socket opened by a
  page of another site is refused with 403 `origin_not_allowed` before the upgrade. The
  socket names its widget in the URL (`/ws/visitor?widget=<id>`, from the config's
  `socket_url`). The hello names the widget again (`hello_widget_refusal`): a hello for
  another widget than the URL's is refused, and a socket whose URL named none has its
  hello's widget checked against the page's site, so the list cannot be bypassed by
  leaving the widget out of the URL.

The limits wrap the existing views here instead of decorating them, so each app gets its
own Limiter (tests create many apps) and the socket module stays as it is.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from typing import Any

from flask import Flask, Response, current_app, request
from flask_limiter import Limiter, RateLimitExceeded
from flask_limiter.util import get_remote_address
from limits import RateLimitItem, parse_many

from connector.chat.actions import conversations
from connector.chat.frames import GUID_PATTERN
from connector.chat.ports import DesignLike
from connector.crm.design import WidgetDesign
from connector.services import services_of
from connector.web.addresses import service_base_url
from connector.web.errors import ApiError, RateLimited, render_error
from connector.web.sockets import engine_of

# Chat files (connector/web/attachments.py): each upload may be megabytes.
UPLOAD_LIMIT_PER_ADDRESS = "30 per minute"

__all__ = [
    "CONFIG_ENDPOINT",
    "SOCKET_ENDPOINT",
    "OriginNotAllowed",
    "check_origin",
    "design_of",
    "frame_limited",
    "hello_widget_refusal",
    "init_app",
]

CONFIG_ENDPOINT = "widget_api.widget_config"
SOCKET_ENDPOINT = "sockets.visitor_socket"
TRANSCRIPT_ENDPOINT = "transcripts.download_transcript"
TRANSCRIPT_MAIL_ENDPOINT = "transcripts.mail_transcript"


# app.extensions key: {frame type: ((per address items), (per widget items))}
_FRAME_LIMITS = "crmchat.frame_limits"
_LIMITER = "crmchat.limiter"


class OriginNotAllowed(ApiError):
    code = "origin_not_allowed"
    http_status = 403


def design_of(design: DesignLike) -> WidgetDesign:
    """The full design behind the engine's narrow view of it (the engine's port has no
    `allowed_domains`; connector/chat/ports.py belongs to the engine's restructure)."""
    if isinstance(design, WidgetDesign):
        return design
    return WidgetDesign.model_validate(design.model_dump(mode="json"))


def check_origin(widget_id: str) -> None:
    """Refuse the request when the widget's design does not allow the page's site.

    An unknown widget passes: the view answers it (404, or the hello's error).
    """
    status = conversations.widget_status(engine_of(current_app), widget_id.lower())
    if status is None:
        return
    origin = request.headers.get("Origin")
    # The service's own pages (the chat window, /widget/window/<id>) are no other site.
    if origin is not None and origin.rstrip("/") == service_base_url():
        return
    if not design_of(status[0].design).allows_origin(origin):
        raise OriginNotAllowed("This widget may not be used on this site.")


def hello_widget_refusal(widget_id: str) -> str | None:
    """Why a visitor socket's hello for `widget_id` is refused, or None when it may go on.

    The socket's URL was checked before the upgrade when it named a widget; the hello
    must then name the same one. A URL without a widget was not checked: the hello's
    widget is, now.
    """
    named = request.args.get("widget")
    if named is not None:
        if named.lower() != widget_id.lower():
            return "This socket was opened for another widget."
        return None
    try:
        check_origin(widget_id)
    except OriginNotAllowed as refused:
        return refused.message
    return None


def _widget_key() -> str:
    # The config names the widget in its path, the socket in its query.
    value = (request.view_args or {}).get("widget_id") or request.args.get("widget", "")
    return "widget:" + str(value).lower()[:64]


def _chat_key() -> str:
    # The chat a transcript request names, by its token (hashed): a forged token gets a
    # bucket of its own, and a 404.
    body = request.get_json(silent=True, cache=True)
    token = body.get("token") if isinstance(body, dict) else None
    return "transcript-chat:" + hashlib.sha256(str(token).encode()).hexdigest()[:32]


def _socket_widget() -> str | None:
    value = request.args.get("widget", "")
    return value.lower() if GUID_PATTERN.fullmatch(value) else None


def _retry_after_secs(limiter: Limiter) -> int:
    current = limiter.current_limit
    if current is None:
        return 1
    return max(1, int(current.reset_at - time.time()) + 1)


def frame_limited(app: Flask, frame_type: str, widget_id: str, address: str) -> int | None:
    """Count one `frame_type` frame from `address` for `widget_id`: None when within the
    limits, else the milliseconds until the fullest window has room again."""
    per_address, per_widget = app.extensions[_FRAME_LIMITS][frame_type]
    strategy = app.extensions[_LIMITER].limiter
    checks = [(item, f"{frame_type}:address", address) for item in per_address]
    checks += [(item, f"{frame_type}:widget", widget_id.lower()) for item in per_widget]
    # Test every window first, so a refused frame uses up none of them.
    for item, scope, key in checks:
        if not strategy.test(item, scope, key):
            reset = strategy.get_window_stats(item, scope, key).reset_time
            return max(1000, int((reset - time.time()) * 1000))
    for item, scope, key in checks:
        strategy.hit(item, scope, key)
    return None


def init_app(app: Flask) -> None:
    """Wrap the config and the visitor socket views with the limits and the origin check."""
    settings = services_of(app).settings
    redis_url = settings.redis_url.get_secret_value() if settings.redis_url else None
    limiter = Limiter(
        get_remote_address,
        app=app,
        storage_uri=redis_url or "memory://",
        key_prefix="crmchat:limits",
        headers_enabled=False,  # our own 429 carries Retry-After; no X-RateLimit-* noise
        strategy="moving-window",
    )

    app.extensions[_LIMITER] = limiter

    def limits_of(text: str) -> tuple[RateLimitItem, ...]:
        return tuple(parse_many(text))

    app.extensions[_FRAME_LIMITS] = {
        "chat.start": (
            limits_of(settings.chat_start_limit_per_address),
            limits_of(settings.chat_start_limit_per_widget),
        ),
        "ticket.create": (
            limits_of(settings.ticket_limit_per_address),
            limits_of(settings.ticket_limit_per_widget),
        ),
    }

    @app.errorhandler(RateLimitExceeded)
    def _too_many(error: RateLimitExceeded) -> Response:
        return render_error(
            RateLimited(
                "Too many requests; try again later.", retry_after_secs=_retry_after_secs(limiter)
            )
        )

    def limited(
        view: Callable[..., Any],
        per_address: str,
        per_widget: str,
        *,
        key: Callable[[], str] = _widget_key,
    ) -> Callable[..., Any]:
        view = limiter.limit(per_widget, key_func=key, per_method=False)(view)
        return limiter.limit(per_address, per_method=False)(view)

    app.view_functions[CONFIG_ENDPOINT] = limited(
        app.view_functions[CONFIG_ENDPOINT],
        settings.config_limit_per_address,
        settings.config_limit_per_widget,
    )
    app.view_functions[SOCKET_ENDPOINT] = limited(
        app.view_functions[SOCKET_ENDPOINT],
        settings.socket_limit_per_address,
        settings.socket_limit_per_widget,
    )

    # Transcripts (connector/web/transcripts.py): each mail goes to an address the visitor
    # typed, so mail is limited per chat as well as per address.
    def per_address(view: Callable[..., Any], limit: str) -> Callable[..., Any]:
        return limiter.limit(limit, per_method=False)(view)

    app.view_functions[TRANSCRIPT_ENDPOINT] = per_address(
        app.view_functions[TRANSCRIPT_ENDPOINT], settings.transcript_limit_per_address
    )
    app.view_functions[TRANSCRIPT_MAIL_ENDPOINT] = limited(
        app.view_functions[TRANSCRIPT_MAIL_ENDPOINT],
        settings.transcript_mail_limit_per_address,
        settings.transcript_mail_limit_per_chat,
        key=_chat_key,
    )

    for endpoint in ("visitor_files.visitor_upload", "agent_files.agent_upload"):
        app.view_functions[endpoint] = per_address(
            app.view_functions[endpoint], UPLOAD_LIMIT_PER_ADDRESS
        )

    @app.before_request
    def _socket_origin() -> None:
        if request.endpoint == SOCKET_ENDPOINT:
            widget_id = _socket_widget()
            if widget_id is not None:
                check_origin(widget_id)
