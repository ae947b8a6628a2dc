"""Messaging channels: Facebook Messenger, Instagram Direct, WhatsApp and Viber.

The platform side only (see docs/channels.md): accounts, signed webhooks parsed into one
typed `InboundEvent`, the platforms' reply rules as pure functions, send clients, and a
local simulator of each platform for the embedded default. A channel message becoming a
conversation in the console goes through `ChannelSink` (the engine's side, next round).
"""

from __future__ import annotations

from .accounts import ChannelAccounts, demo_accounts
from .errors import (
    ChannelError,
    ChannelUnreachable,
    CredentialsRejected,
    NotSubscribed,
    OutsideWindow,
    RateLimited,
    RecipientUnavailable,
    SendRefused,
)
from .model import (
    Attachment,
    AttachmentKind,
    ChannelAccount,
    ChannelType,
    EventKind,
    InboundEvent,
    WhatsAppTemplate,
)
from .rules import ReplyMode, ReplyWindow, check_reply, reply_window

__all__ = [
    "Attachment",
    "AttachmentKind",
    "ChannelAccount",
    "ChannelAccounts",
    "ChannelError",
    "ChannelType",
    "ChannelUnreachable",
    "CredentialsRejected",
    "EventKind",
    "InboundEvent",
    "NotSubscribed",
    "OutsideWindow",
    "RateLimited",
    "RecipientUnavailable",
    "ReplyMode",
    "ReplyWindow",
    "SendRefused",
    "WhatsAppTemplate",
    "check_reply",
    "demo_accounts",
    "reply_window",
]
