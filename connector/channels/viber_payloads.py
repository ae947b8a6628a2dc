"""Viber's callbacks -> `InboundEvent`s.

Every callback is ``{"event", "timestamp": <ms>, "chat_hostname", "message_token", ...}``:

    message               "sender": {"id", "name", ...}, "message": {"type": "text" |
                          "picture" | "video" | "file" | "sticker" | "location" | ...,
                          "text", "media", "file_name", "sticker_id"}
    delivered | seen      "user_id"
    failed                "user_id", "desc"
    subscribed            "user": {"id", "name", ...}
    unsubscribed          "user_id"
    conversation_started  "user": {...}, "type": "open", "context", "subscribed": bool
    webhook               set_webhook's check: answered 200, no event

Malformed callbacks raise `PayloadError`.

The answer to `conversation_started` may carry the bot's welcome message, the one message
Viber lets a bot send before the person subscribes: the send_message body without
`receiver` and `auth_token` (`welcome_answer`; developers.viber.com/docs/api/rest-bot-api,
"Welcome message").
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from .meta_payloads import PayloadError
from .model import (
    Attachment,
    AttachmentKind,
    ChannelAccount,
    ChannelType,
    EventKind,
    InboundEvent,
)

__all__ = ["parse_viber_callback", "welcome_answer"]

_MEDIA = {
    "picture": AttachmentKind.IMAGE,
    "video": AttachmentKind.VIDEO,
    "file": AttachmentKind.FILE,
    "sticker": AttachmentKind.STICKER,
    "location": AttachmentKind.LOCATION,
}
_STATUS_EVENTS = {
    "delivered": EventKind.DELIVERED,
    "seen": EventKind.READ,
    "failed": EventKind.FAILED,
    "unsubscribed": EventKind.UNSUBSCRIBED,
}
_USER_EVENTS = {
    "subscribed": EventKind.SUBSCRIBED,
    "conversation_started": EventKind.CONVERSATION_STARTED,
}


def welcome_answer(account: ChannelAccount, events: list[InboundEvent]) -> dict[str, Any] | None:
    """The welcome message to answer a `conversation_started` with, if the account has one."""
    started = any(event.kind is EventKind.CONVERSATION_STARTED for event in events)
    if not started or account.channel is not ChannelType.VIBER or not account.welcome_text:
        return None
    # The sender's name is the bot's as configured (platform id), as in send_message.
    return {"sender": {"name": account.platform_id}, "type": "text", "text": account.welcome_text}


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise PayloadError("an id or text must be a string")
    return str(value)


def parse_viber_callback(account: ChannelAccount, body: Any) -> list[InboundEvent]:
    """The event in one Viber callback for `account` (none for `webhook`)."""
    if not isinstance(body, dict):
        raise PayloadError("the body must be an object")
    name = body.get("event")
    timestamp = body.get("timestamp")
    if not isinstance(timestamp, int) or isinstance(timestamp, bool):
        raise PayloadError("timestamp must be a number of milliseconds")
    if name == "webhook":
        return []
    base: dict[str, Any] = {
        "channel": account.channel,
        "account_key": account.key,
        "message_id": _text(body.get("message_token")),
        "at": datetime.fromtimestamp(timestamp / 1000, tz=UTC),
    }
    try:
        if name == "message":
            return [_message(base, body)]
        if name in _STATUS_EVENTS:
            return [
                InboundEvent(
                    **base,
                    kind=_STATUS_EVENTS[name],
                    person_id=_text(body.get("user_id")) or "",
                    error=_text(body.get("desc")),
                )
            ]
        if name in _USER_EVENTS:
            user = body.get("user")
            if not isinstance(user, dict):
                raise PayloadError(f"{name} needs `user`")
            return [
                InboundEvent(
                    **base,
                    kind=_USER_EVENTS[name],
                    person_id=_text(user.get("id")) or "",
                    person_name=_text(user.get("name")),
                )
            ]
    except ValidationError as error:
        raise PayloadError(f"a field is out of bounds: {error.errors()[0]['msg']}") from error
    return []  # client_status and events added later: nothing to do


def _message(base: dict[str, Any], body: dict[str, Any]) -> InboundEvent:
    sender = body.get("sender")
    message = body.get("message")
    if not isinstance(sender, dict) or not isinstance(message, dict):
        raise PayloadError("a message needs `sender` and `message`")
    kind = str(message.get("type"))
    attachments: tuple[Attachment, ...] = ()
    if kind in _MEDIA:
        attachments = (
            Attachment(
                kind=_MEDIA[kind],
                url=_text(message.get("media")),
                name=_text(message.get("file_name")),
                sticker_id=_text(message.get("sticker_id")),
            ),
        )
    elif kind != "text":
        attachments = (Attachment(kind=AttachmentKind.OTHER, name=kind[:100]),)
    return InboundEvent(
        **base,
        kind=EventKind.MESSAGE,
        person_id=_text(sender.get("id")) or "",
        person_name=_text(sender.get("name")),
        text=_text(message.get("text")),
        attachments=attachments,
    )
