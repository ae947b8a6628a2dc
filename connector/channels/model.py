"""The channels' records: an account, the one inbound-event model, a WhatsApp template.

Every platform's webhook is parsed into `InboundEvent` (`meta_payloads`,
`viber_payloads`), so what follows (dedupe, the engine) never sees a platform's shape.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, SecretStr

__all__ = [
    "ACCOUNT_KEY_PATTERN",
    "Attachment",
    "AttachmentKind",
    "ChannelAccount",
    "ChannelType",
    "EventKind",
    "InboundEvent",
    "WhatsAppTemplate",
]

# The column crmchat_welcomemessage holds at most this (an nvarchar's limit is 4,000).
VIBER_WELCOME_MAX_CHARS = 4000
# An account's key is part of its webhook URL: letters, digits and dashes (a GUID fits).
ACCOUNT_KEY_PATTERN = r"^[A-Za-z0-9-]{1,64}$"
# Messenger caps a text at 2,000 characters, WhatsApp at 4,096, Viber at 7,000: the
# largest, so nothing a platform delivered is cut.
TEXT_MAX_CHARS = 7000
# Meta batches up to 1,000 updates in one call; more attachments than this in one
# message is not something a person sends.
ATTACHMENTS_MAX = 20


class ChannelType(StrEnum):
    MESSENGER = "messenger"
    INSTAGRAM = "instagram"
    WHATSAPP = "whatsapp"
    VIBER = "viber"

    @property
    def is_meta(self) -> bool:
        return self is not ChannelType.VIBER


class EventKind(StrEnum):
    MESSAGE = "message"  # text and/or attachments or a sticker
    DELIVERED = "delivered"  # our message reached the person's device
    READ = "read"  # the person read our message (Messenger: all up to a watermark)
    FAILED = "failed"  # the platform could not deliver our message
    CONVERSATION_STARTED = "conversation_started"  # Viber: opened the chat, not subscribed
    SUBSCRIBED = "subscribed"  # Viber
    UNSUBSCRIBED = "unsubscribed"  # Viber


class AttachmentKind(StrEnum):
    IMAGE = "image"
    VIDEO = "video"
    AUDIO = "audio"
    FILE = "file"
    STICKER = "sticker"
    LOCATION = "location"
    OTHER = "other"


class Attachment(BaseModel):
    model_config = ConfigDict(frozen=True)

    kind: AttachmentKind
    # Messenger/Instagram/Viber give a URL; WhatsApp gives a media id to fetch.
    url: str | None = Field(default=None, max_length=4000)
    media_id: str | None = Field(default=None, max_length=200)
    name: str | None = Field(default=None, max_length=500)
    mime_type: str | None = Field(default=None, max_length=200)
    sticker_id: str | None = Field(default=None, max_length=100)


class InboundEvent(BaseModel):
    """One thing a platform told us, in the platform's own ids."""

    model_config = ConfigDict(frozen=True)

    channel: ChannelType
    account_key: str = Field(max_length=64)
    kind: EventKind
    # Page-scoped id (Messenger), Instagram-scoped id, WhatsApp id (phone), Viber user id.
    person_id: str = Field(min_length=1, max_length=200)
    person_name: str | None = Field(default=None, max_length=200)
    # The platform's id of the message this event is about (ours for statuses).
    message_id: str | None = Field(default=None, max_length=300)
    text: str | None = Field(default=None, max_length=TEXT_MAX_CHARS)
    attachments: tuple[Attachment, ...] = Field(default=(), max_length=ATTACHMENTS_MAX)
    # Messenger's read receipts cover every message sent before this time.
    watermark: datetime | None = None
    error: str | None = Field(default=None, max_length=500)
    at: datetime

    @property
    def dedupe_key(self) -> str:
        """Same key for a redelivery of the same event, different for anything else."""
        anchor = self.message_id or (self.watermark.isoformat() if self.watermark else "")
        return f"{self.channel}:{self.account_key}:{self.kind}:{self.person_id}:{anchor}"


class ChannelAccount(BaseModel):
    """A Messenger page, Instagram account, WhatsApp business number or Viber bot."""

    model_config = ConfigDict(frozen=True)

    key: str = Field(pattern=ACCOUNT_KEY_PATTERN)
    channel: ChannelType
    name: str = Field(min_length=1, max_length=100)
    # Page id, Instagram account id, WhatsApp phone-number id; for Viber the bot's name
    # as the sender shown to people (Viber addresses a bot by its token alone).
    platform_id: str = Field(min_length=1, max_length=100)
    topic_id: str | None = None
    enabled: bool = True
    access_token: SecretStr | None = None  # Meta: page / system-user token
    app_secret: SecretStr | None = None  # Meta: signs X-Hub-Signature-256
    verify_token: SecretStr | None = None  # Meta: the webhook verification handshake
    auth_token: SecretStr | None = None  # Viber: X-Viber-Auth-Token and the signature key
    # Viber: answered to `conversation_started`, the one message a bot may send before
    # the person subscribes (Viber caps a text at 7,000 characters).
    welcome_text: str | None = Field(default=None, max_length=VIBER_WELCOME_MAX_CHARS)
    # WhatsApp: the WhatsApp Business Account (WABA) that holds the number's message
    # templates (GET /<WABA id>/message_templates).
    business_account_id: str | None = Field(default=None, max_length=100)


_Value = Annotated[str, Field(min_length=1, max_length=1024)]
_Name = Annotated[str, Field(pattern=r"^[a-z0-9_]{1,100}$")]


class WhatsAppTemplate(BaseModel):
    """An approved template message: name, language and its parameters.

    - `parameters`: the body's, in order; `parameter_names`: for a template of
      parameter_format NAMED the name of each (`{{first_name}}`), sent as
      `parameter_name`; empty for POSITIONAL ones (`{{1}}`).
    - `header_format` TEXT with `header_parameters` (its variables, named as the body's
      are in `header_names`), or IMAGE / DOCUMENT / VIDEO with one https link in
      `header_parameters` (the media WhatsApp fetches).
    - `button_parameters`: (button index, value) for each URL button with a variable,
      the suffix of its URL."""

    model_config = ConfigDict(frozen=True)

    # Meta: lowercase letters, digits and underscores, at most 512 characters.
    name: str = Field(pattern=r"^[a-z0-9_]{1,512}$")
    language: str = Field(pattern=r"^[a-z]{2,3}(_[A-Z]{2})?$")
    parameters: tuple[_Value, ...] = Field(default=(), max_length=20)
    parameter_names: tuple[_Name, ...] = Field(default=(), max_length=20)
    header_format: str | None = Field(default=None, pattern=r"^(TEXT|IMAGE|DOCUMENT|VIDEO)$")
    header_parameters: tuple[_Value, ...] = Field(default=(), max_length=1)
    header_names: tuple[_Name, ...] = Field(default=(), max_length=1)
    button_parameters: tuple[tuple[int, _Value], ...] = Field(default=(), max_length=10)

    def to_payload(self) -> dict[str, object]:
        """The `template` object of a Cloud API send request."""
        payload: dict[str, object] = {"name": self.name, "language": {"code": self.language}}
        components: list[dict[str, object]] = []
        if self.header_format and self.header_parameters:
            if self.header_format == "TEXT":
                header = _text_parameters(self.header_parameters, self.header_names)
            else:
                kind = self.header_format.lower()
                header = [{"type": kind, kind: {"link": self.header_parameters[0]}}]
            components.append({"type": "header", "parameters": header})
        if self.parameters:
            body = _text_parameters(self.parameters, self.parameter_names)
            components.append({"type": "body", "parameters": body})
        for index, value in self.button_parameters:
            components.append(
                {
                    "type": "button",
                    "sub_type": "url",
                    "index": str(index),
                    "parameters": [{"type": "text", "text": value}],
                }
            )
        if components:
            payload["components"] = components
        return payload


def _text_parameters(values: tuple[str, ...], names: tuple[str, ...]) -> list[dict[str, object]]:
    parameters: list[dict[str, object]] = []
    for index, value in enumerate(values):
        parameter: dict[str, object] = {"type": "text", "text": value}
        if index < len(names):
            parameter["parameter_name"] = names[index]
        parameters.append(parameter)
    return parameters
