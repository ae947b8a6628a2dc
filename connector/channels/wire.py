"""The platforms' webhook bodies, built as each platform sends them.

The simulator sends these (signed) to the service; tests and the webhook benchmark use
them too, so all three speak the shapes documented in docs/channels.md, and the parsers
are tested against the same shapes the simulator produces.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from .model import ChannelAccount, ChannelType
from .signatures import META_SIGNATURE_HEADER, VIBER_SIGNATURE_HEADER, sign_meta, sign_viber

__all__ = [
    "meta_message_body",
    "meta_status_body",
    "signed_request",
    "viber_event_body",
    "viber_message_body",
]


def _millis(at: datetime) -> int:
    return int(at.timestamp() * 1000)


def meta_message_body(
    account: ChannelAccount,
    *,
    person_id: str,
    person_name: str,
    message_id: str,
    at: datetime,
    text: str | None = None,
    image_url: str | None = None,
    sticker_id: str | None = None,
    sticker_url: str | None = None,
    file_url: str | None = None,
    file_name: str | None = None,
    mime_type: str = "image/jpeg",
) -> dict[str, Any]:
    """A Messenger, Instagram or WhatsApp webhook carrying one message from a person.

    WhatsApp carries media ids where the others carry URLs: `image_url`, `file_url` and
    `sticker_id` are the media ids then (GET /<media id> gives the download URL)."""
    if account.channel is ChannelType.WHATSAPP:
        message: dict[str, Any] = {
            "from": person_id,
            "id": message_id,
            "timestamp": str(int(at.timestamp())),
        }
        if image_url is not None:
            message.update(
                type="image",
                image={
                    "id": image_url,
                    "mime_type": mime_type,
                    "sha256": "",
                    "caption": text or "",
                },
            )
        elif file_url is not None:
            document: dict[str, Any] = {"id": file_url, "mime_type": mime_type, "sha256": ""}
            if file_name is not None:
                document["filename"] = file_name
            if text:
                document["caption"] = text
            message.update(type="document", document=document)
        elif sticker_id is not None:
            message.update(
                type="sticker",
                sticker={"id": sticker_id, "mime_type": "image/webp", "animated": False},
            )
        else:
            message.update(type="text", text={"body": text or ""})
        return _whatsapp_body(
            account,
            {
                "contacts": [{"profile": {"name": person_name}, "wa_id": person_id}],
                "messages": [message],
            },
        )
    body: dict[str, Any] = {"mid": message_id}
    if text is not None:
        body["text"] = text
    if image_url is not None:
        body["attachments"] = [{"type": "image", "payload": {"url": image_url}}]
    if file_url is not None:
        body["attachments"] = [{"type": "file", "payload": {"url": file_url}}]
    if sticker_id is not None:
        body["sticker_id"] = int(sticker_id) if sticker_id.isdigit() else sticker_id
        body["attachments"] = [
            {
                "type": "image",
                "payload": {
                    "url": sticker_url or f"https://scontent.example/{sticker_id}.png",
                    "sticker_id": body["sticker_id"],
                },
            }
        ]
    return _messaging_body(
        account,
        {
            "sender": {"id": person_id},
            "recipient": {"id": account.platform_id},
            "timestamp": _millis(at),
            "message": body,
        },
    )


def meta_status_body(
    account: ChannelAccount,
    *,
    person_id: str,
    message_id: str,
    status: str,
    at: datetime,
    error: tuple[int, str] | None = None,
) -> dict[str, Any]:
    """A delivery/read receipt for one of our messages ("delivered", "read", "failed")."""
    if account.channel is ChannelType.WHATSAPP:
        item: dict[str, Any] = {
            "id": message_id,
            "status": status,
            "timestamp": str(int(at.timestamp())),
            "recipient_id": person_id,
        }
        if error is not None:
            item["errors"] = [{"code": error[0], "title": error[1]}]
        return _whatsapp_body(account, {"statuses": [item]})
    receipt: dict[str, Any]
    if status == "read":
        receipt = {
            "read": (
                {"mid": message_id}
                if account.channel is ChannelType.INSTAGRAM
                else {"watermark": _millis(at)}
            )
        }
    else:
        receipt = {"delivery": {"mids": [message_id], "watermark": _millis(at)}}
    return _messaging_body(
        account,
        {
            "sender": {"id": person_id},
            "recipient": {"id": account.platform_id},
            "timestamp": _millis(at),
            **receipt,
        },
    )


def _messaging_body(account: ChannelAccount, item: dict[str, Any]) -> dict[str, Any]:
    obj = "page" if account.channel is ChannelType.MESSENGER else "instagram"
    return {
        "object": obj,
        "entry": [{"id": account.platform_id, "time": item["timestamp"], "messaging": [item]}],
    }


def _whatsapp_body(account: ChannelAccount, value: dict[str, Any]) -> dict[str, Any]:
    return {
        "object": "whatsapp_business_account",
        "entry": [
            {
                "id": "102290129340398",  # the WhatsApp Business Account id
                "changes": [
                    {
                        "field": "messages",
                        "value": {
                            "messaging_product": "whatsapp",
                            "metadata": {
                                "display_phone_number": "15550100",
                                "phone_number_id": account.platform_id,
                            },
                            **value,
                        },
                    }
                ],
            }
        ],
    }


def viber_message_body(
    *,
    person_id: str,
    person_name: str,
    message_token: int,
    at: datetime,
    text: str | None = None,
    image_url: str | None = None,
    sticker_id: str | None = None,
    file_url: str | None = None,
    file_name: str | None = None,
    file_size: int = 0,
) -> dict[str, Any]:
    message: dict[str, Any]
    if file_url is not None:
        message = {
            "type": "file",
            "media": file_url,
            "size": file_size,
            "file_name": file_name or "file",
        }
    elif image_url is not None:
        message = {
            "type": "picture",
            "text": text or "",
            "media": image_url,
            "thumbnail": image_url,
        }
    elif sticker_id is not None:
        message = {
            "type": "sticker",
            "sticker_id": int(sticker_id) if sticker_id.isdigit() else sticker_id,
        }
    else:
        message = {"type": "text", "text": text or ""}
    return {
        "event": "message",
        "timestamp": _millis(at),
        "chat_hostname": "SN-CHAT-01_",
        "message_token": message_token,
        "sender": {
            "id": person_id,
            "name": person_name,
            "avatar": "",
            "language": "en",
            "country": "GB",
            "api_version": 10,
        },
        "message": message,
        "silent": False,
    }


def viber_event_body(
    event: str, *, person_id: str, person_name: str, message_token: int, at: datetime
) -> dict[str, Any]:
    """delivered / seen / failed / unsubscribed (user_id), subscribed /
    conversation_started (user), webhook (neither)."""
    body: dict[str, Any] = {
        "event": event,
        "timestamp": _millis(at),
        "chat_hostname": "SN-CHAT-01_",
        "message_token": message_token,
    }
    user = {
        "id": person_id,
        "name": person_name,
        "avatar": "",
        "country": "GB",
        "language": "en",
        "api_version": 10,
    }
    if event in ("subscribed", "conversation_started"):
        body["user"] = user
        if event == "conversation_started":
            body.update(type="open", context="", subscribed=False)
    elif event != "webhook":
        body["user_id"] = person_id
        if event == "failed":
            body["desc"] = "failure description"
    return body


def signed_request(account: ChannelAccount, body: dict[str, Any]) -> tuple[bytes, dict[str, str]]:
    """The raw body and headers the platform sends: Meta serialises with escaped unicode
    (ensure_ascii) and signs those bytes; Viber signs its compact JSON."""
    raw = json.dumps(body, ensure_ascii=True, separators=(",", ":")).encode("ascii")
    headers = {"Content-Type": "application/json"}
    if account.channel.is_meta:
        assert account.app_secret is not None
        headers[META_SIGNATURE_HEADER] = sign_meta(account.app_secret.get_secret_value(), raw)
    else:
        assert account.auth_token is not None
        headers[VIBER_SIGNATURE_HEADER] = sign_viber(account.auth_token.get_secret_value(), raw)
    return raw, headers
