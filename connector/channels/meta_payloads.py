"""Meta's webhook bodies (Messenger, Instagram, WhatsApp Cloud API) -> `InboundEvent`s.

Messenger and Instagram::

    {"object": "page" | "instagram",
     "entry": [{"id": <page or IG id>, "time": <ms>,
                "messaging": [{"sender": {"id"}, "recipient": {"id"}, "timestamp": <ms>,
                               "message": {"mid", "text", "attachments": [{"type",
                                           "payload": {"url", "sticker_id"}}],
                                           "sticker_id", "is_echo"}
                               | "delivery": {"mids": [...], "watermark": <ms>}
                               | "read": {"watermark": <ms>} | {"mid"} (Instagram)}]}]}

WhatsApp::

    {"object": "whatsapp_business_account",
     "entry": [{"id": <WABA id>, "changes": [{"field": "messages", "value": {
         "messaging_product": "whatsapp",
         "metadata": {"display_phone_number", "phone_number_id"},
         "contacts": [{"profile": {"name"}, "wa_id"}],
         "messages": [{"from", "id", "timestamp": "<s>", "type": "text" | "image" | ...,
                       "text": {"body"}, "image": {"id", "mime_type", "caption"}, ...}],
         "statuses": [{"id", "status": "sent"|"delivered"|"read"|"failed",
                       "timestamp", "recipient_id", "errors": [{"code", "title"}]}]}}]}]}

Entries for another page or number than the account's are skipped (one app may serve
several); echoes of our own sends and parts we do not use (reactions, postbacks, "sent"
statuses) are dropped. Malformed bodies raise `PayloadError`.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from .model import (
    Attachment,
    AttachmentKind,
    ChannelAccount,
    ChannelType,
    EventKind,
    InboundEvent,
)

__all__ = ["META_OBJECTS", "PayloadError", "parse_meta_webhook"]

# The `object` each channel's webhooks carry.
META_OBJECTS = {
    ChannelType.MESSENGER: "page",
    ChannelType.INSTAGRAM: "instagram",
    ChannelType.WHATSAPP: "whatsapp_business_account",
}
_MESSENGER_ATTACHMENTS = {
    "image": AttachmentKind.IMAGE,
    "video": AttachmentKind.VIDEO,
    "audio": AttachmentKind.AUDIO,
    "file": AttachmentKind.FILE,
    "location": AttachmentKind.LOCATION,
}
_WHATSAPP_MEDIA = {
    "image": AttachmentKind.IMAGE,
    "video": AttachmentKind.VIDEO,
    "audio": AttachmentKind.AUDIO,
    "document": AttachmentKind.FILE,
    "sticker": AttachmentKind.STICKER,
}
_WHATSAPP_STATUSES = {
    "delivered": EventKind.DELIVERED,
    "read": EventKind.READ,
    "failed": EventKind.FAILED,
}


class PayloadError(ValueError):
    """The body is JSON but not in the platform's documented shape."""


def _from_millis(value: Any) -> datetime:
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise PayloadError("timestamp must be a number of milliseconds")
    return datetime.fromtimestamp(value / 1000, tz=UTC)


def _from_seconds(value: Any) -> datetime:
    try:
        return datetime.fromtimestamp(int(value), tz=UTC)
    except (TypeError, ValueError, OverflowError) as error:
        raise PayloadError("timestamp must be a number of seconds") from error


def _dict(value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise PayloadError(f"{what} must be an object")
    return value


def _list(value: Any, what: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise PayloadError(f"{what} must be an array")
    return value


def _str(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise PayloadError("an id or text must be a string")
    return str(value)


def parse_meta_webhook(account: ChannelAccount, body: Any) -> list[InboundEvent]:
    """The events in one Meta webhook body for `account`; raises PayloadError."""
    root = _dict(body, "the body")
    expected = META_OBJECTS.get(account.channel)
    if root.get("object") != expected:
        raise PayloadError(f"object must be {expected!r} for a {account.channel} account")
    try:
        events: list[InboundEvent] = []
        for entry in _list(root.get("entry"), "entry"):
            entry = _dict(entry, "an entry")
            if account.channel is ChannelType.WHATSAPP:
                events.extend(_whatsapp_entry(account, entry))
            elif _str(entry.get("id")) == account.platform_id:
                for item in _list(entry.get("messaging"), "messaging"):
                    event = _messaging_item(account, _dict(item, "a messaging item"))
                    if event is not None:
                        events.append(event)
        return events
    except ValidationError as error:
        raise PayloadError(f"a field is out of bounds: {error.errors()[0]['msg']}") from error


def _messaging_item(account: ChannelAccount, item: dict[str, Any]) -> InboundEvent | None:
    sender = _str(_dict(item.get("sender"), "sender").get("id"))
    if not sender or sender == account.platform_id:
        return None
    base: dict[str, Any] = {
        "channel": account.channel,
        "account_key": account.key,
        "person_id": sender,
        "at": _from_millis(item.get("timestamp")),
    }
    if "message" in item:
        message = _dict(item["message"], "message")
        if message.get("is_echo"):
            return None  # our own send, echoed back
        attachments = [
            _messenger_attachment(_dict(a, "an attachment"))
            for a in _list(message.get("attachments"), "attachments")
        ]
        if message.get("sticker_id") is not None and not any(
            a.kind is AttachmentKind.STICKER for a in attachments
        ):
            attachments.append(
                Attachment(kind=AttachmentKind.STICKER, sticker_id=_str(message["sticker_id"]))
            )
        return InboundEvent(
            **base,
            kind=EventKind.MESSAGE,
            message_id=_str(message.get("mid")),
            text=_str(message.get("text")),
            attachments=tuple(attachments),
        )
    if "delivery" in item:
        delivery = _dict(item["delivery"], "delivery")
        mids = [_str(mid) for mid in _list(delivery.get("mids"), "mids")]
        return InboundEvent(
            **base,
            kind=EventKind.DELIVERED,
            message_id=mids[0] if mids else None,
            watermark=_from_millis(delivery["watermark"]) if "watermark" in delivery else None,
        )
    if "read" in item:
        read = _dict(item["read"], "read")
        return InboundEvent(
            **base,
            kind=EventKind.READ,
            message_id=_str(read.get("mid")),  # Instagram names the message
            watermark=_from_millis(read["watermark"]) if "watermark" in read else None,
        )
    return None  # postbacks, reactions, referrals: not used yet


def _messenger_attachment(item: dict[str, Any]) -> Attachment:
    payload = item.get("payload") if isinstance(item.get("payload"), dict) else {}
    assert isinstance(payload, dict)
    sticker = _str(payload.get("sticker_id"))
    kind = (
        AttachmentKind.STICKER
        if sticker
        else _MESSENGER_ATTACHMENTS.get(str(item.get("type")), AttachmentKind.OTHER)
    )
    return Attachment(kind=kind, url=_str(payload.get("url")), sticker_id=sticker)


def _whatsapp_entry(account: ChannelAccount, entry: dict[str, Any]) -> list[InboundEvent]:
    events: list[InboundEvent] = []
    for change in _list(entry.get("changes"), "changes"):
        change = _dict(change, "a change")
        if change.get("field") != "messages":
            continue
        value = _dict(change.get("value"), "value")
        metadata = _dict(value.get("metadata"), "metadata")
        if _str(metadata.get("phone_number_id")) != account.platform_id:
            continue
        names = {
            _str(_dict(c, "a contact").get("wa_id")): _str(
                _dict(c.get("profile") or {}, "profile").get("name")
            )
            for c in _list(value.get("contacts"), "contacts")
        }
        for message in _list(value.get("messages"), "messages"):
            events.append(_whatsapp_message(account, _dict(message, "a message"), names))
        for status in _list(value.get("statuses"), "statuses"):
            event = _whatsapp_status(account, _dict(status, "a status"))
            if event is not None:
                events.append(event)
    return events


def _whatsapp_message(
    account: ChannelAccount, message: dict[str, Any], names: dict[str | None, str | None]
) -> InboundEvent:
    person = _str(message.get("from"))
    if not person:
        raise PayloadError("a message needs `from`")
    kind = str(message.get("type"))
    text: str | None = None
    attachments: list[Attachment] = []
    if kind == "text":
        text = _str(_dict(message.get("text"), "text").get("body"))
    elif kind in _WHATSAPP_MEDIA:
        media = _dict(message.get(kind), kind)
        text = _str(media.get("caption"))
        attachments.append(
            Attachment(
                kind=_WHATSAPP_MEDIA[kind],
                media_id=_str(media.get("id")),
                name=_str(media.get("filename")),
                mime_type=_str(media.get("mime_type")),
            )
        )
    else:
        attachments.append(Attachment(kind=AttachmentKind.OTHER, name=kind[:100]))
    return InboundEvent(
        channel=account.channel,
        account_key=account.key,
        kind=EventKind.MESSAGE,
        person_id=person,
        person_name=names.get(person),
        message_id=_str(message.get("id")),
        text=text,
        attachments=tuple(attachments),
        at=_from_seconds(message.get("timestamp")),
    )


def _whatsapp_status(account: ChannelAccount, status: dict[str, Any]) -> InboundEvent | None:
    kind = _WHATSAPP_STATUSES.get(str(status.get("status")))
    if kind is None:
        return None  # "sent": the send call's answer already said so
    person = _str(status.get("recipient_id"))
    if not person:
        raise PayloadError("a status needs `recipient_id`")
    errors = _list(status.get("errors"), "errors")
    error = None
    if errors:
        first = _dict(errors[0], "an error")
        error = f"{first.get('code')}: {first.get('title') or first.get('message') or ''}"
    return InboundEvent(
        channel=account.channel,
        account_key=account.key,
        kind=kind,
        person_id=person,
        message_id=_str(status.get("id")),
        error=error[:500] if error else None,
        at=_from_seconds(status.get("timestamp")),
    )
