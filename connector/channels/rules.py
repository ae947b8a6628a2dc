"""The platforms' reply rules, as pure functions of the last inbound message and now.

- Messenger / Instagram: a standard reply within 24 hours of the person's last message;
  after that, up to 7 days, only a human agent's reply tagged HUMAN_AGENT.
- WhatsApp: free-form messages only inside the 24-hour customer service window that the
  person's last message opened; outside it only approved template messages.
- Viber: only to subscribed people (a `conversation_started` allows one welcome message),
  with no time window.

Nobody who never wrote to us can be messaged. Sources in docs/channels.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from .errors import NotSubscribed, OutsideWindow
from .model import ChannelType

__all__ = [
    "HUMAN_AGENT_WINDOW",
    "STANDARD_WINDOW",
    "ReplyMode",
    "ReplyWindow",
    "check_reply",
    "reply_schedule",
    "reply_window",
]

# Meta's standard messaging window and customer service window: 24 hours.
STANDARD_WINDOW = timedelta(hours=24)
# The HUMAN_AGENT tag: a human's reply up to 7 days after the person's last message.
HUMAN_AGENT_WINDOW = timedelta(days=7)


class ReplyMode(StrEnum):
    FREE = "free"  # any reply
    HUMAN_AGENT_TAG = "human_agent_tag"  # Messenger/Instagram: a human's reply, tagged
    TEMPLATE_ONLY = "template_only"  # WhatsApp: approved templates only
    CLOSED = "closed"  # nothing can be sent


@dataclass(frozen=True)
class ReplyWindow:
    """What may be sent now, and until when (None: no end, or nothing to end)."""

    mode: ReplyMode
    until: datetime | None = None


def reply_schedule(
    channel: ChannelType, *, last_inbound_at: datetime | None, subscribed: bool = False
) -> tuple[ReplyWindow, ...]:
    """Every window the person's last message opens, in order; each lasts until its
    `until`, the last one (until None) for good. What the console shows the agent."""
    if channel is ChannelType.VIBER:
        return (ReplyWindow(ReplyMode.FREE if subscribed else ReplyMode.CLOSED),)
    if last_inbound_at is None:
        return (ReplyWindow(ReplyMode.CLOSED),)
    standard = ReplyWindow(ReplyMode.FREE, last_inbound_at + STANDARD_WINDOW)
    if channel is ChannelType.WHATSAPP:
        return (standard, ReplyWindow(ReplyMode.TEMPLATE_ONLY))
    tagged = ReplyWindow(ReplyMode.HUMAN_AGENT_TAG, last_inbound_at + HUMAN_AGENT_WINDOW)
    return (standard, tagged, ReplyWindow(ReplyMode.CLOSED))


def reply_window(
    channel: ChannelType,
    *,
    last_inbound_at: datetime | None,
    now: datetime,
    subscribed: bool = False,
) -> ReplyWindow:
    """What `channel` allows now, given when the person last wrote (None: never)."""
    if now.tzinfo is None or (last_inbound_at is not None and last_inbound_at.tzinfo is None):
        raise ValueError("reply_window needs timezone-aware datetimes")
    schedule = reply_schedule(channel, last_inbound_at=last_inbound_at, subscribed=subscribed)
    return next(w for w in schedule if w.until is None or now < w.until)


def check_reply(
    channel: ChannelType, window: ReplyWindow, *, template: bool = False, by_human: bool = True
) -> str | None:
    """Raise unless the reply may go out now; returns the Meta message tag it needs.

    Raises:
        OutsideWindow: the window is closed for this kind of message (`.mode` says what
            is still allowed).
        NotSubscribed: Viber, and the person is not subscribed.
    """
    mode = window.mode
    if mode is ReplyMode.CLOSED:
        if channel is ChannelType.VIBER:
            raise NotSubscribed(channel, "Viber people can be messaged only while subscribed.")
        raise _outside(channel, mode, "The person has not written within the reply window.")
    if template:
        if channel is not ChannelType.WHATSAPP:
            raise ValueError("templates are WhatsApp's")
        return None  # a template may go out whenever the person wrote to us before
    if mode is ReplyMode.TEMPLATE_ONLY:
        raise _outside(
            channel, mode, "More than 24 hours since the person's last message: send a template."
        )
    if mode is ReplyMode.HUMAN_AGENT_TAG:
        if not by_human:
            raise _outside(channel, mode, "After 24 hours only a human agent may reply.")
        return "HUMAN_AGENT"
    return None


def _outside(channel: ChannelType, mode: ReplyMode, message: str) -> OutsideWindow:
    return OutsideWindow(channel, message, mode=mode.value)
