"""Errors of the channels' send clients and reply rules.

Every refusal is raised, never returned::

    ChannelError                     channel, code (the platform's), message
     ├── SendRefused                 the platform will not take this message as it is
     │    ├── OutsideWindow          the reply window is closed (Meta 10/2018278,
     │    │                          WhatsApp 131047); `mode` says what is still allowed
     │    ├── RecipientUnavailable   blocked us / cannot be reached (Meta 551)
     │    │    └── NotSubscribed     Viber: the person is not subscribed (status 6)
     │    └── InvalidRequest         anything else the platform calls a bad request
     ├── RateLimited                 slow down; `retry_after` in seconds when known
     ├── CredentialsRejected         token or secret wrong or expired (Meta 190, Viber 2)
     └── ChannelUnreachable          network failure, timeout or a 5xx

Only `RateLimited` (with a wait) and `ChannelUnreachable` before the request was sent are
worth retrying; everything else would fail the same way again.
"""

from __future__ import annotations

from .model import ChannelType

__all__ = [
    "ChannelError",
    "ChannelUnreachable",
    "CredentialsRejected",
    "InvalidRequest",
    "NotSubscribed",
    "OutsideWindow",
    "RateLimited",
    "RecipientUnavailable",
    "SendRefused",
]


class ChannelError(Exception):
    """Base of every error a channel raises; `code` is the platform's own, as a string."""

    api_code = "channel_error"

    def __init__(self, channel: ChannelType, message: str, *, code: str = "") -> None:
        super().__init__(message)
        self.channel = channel
        self.message = message
        self.code = code


class SendRefused(ChannelError):
    api_code = "send_refused"


class OutsideWindow(SendRefused):
    api_code = "outside_window"

    def __init__(
        self, channel: ChannelType, message: str, *, code: str = "", mode: str = "closed"
    ) -> None:
        super().__init__(channel, message, code=code)
        # What may still be sent: "human_agent_tag", "template_only" or "closed".
        self.mode = mode


class RecipientUnavailable(SendRefused):
    api_code = "recipient_unavailable"


class NotSubscribed(RecipientUnavailable):
    api_code = "not_subscribed"


class InvalidRequest(SendRefused):
    api_code = "invalid_request"


class RateLimited(ChannelError):
    api_code = "rate_limited"

    def __init__(
        self,
        channel: ChannelType,
        message: str,
        *,
        code: str = "",
        retry_after: float | None = None,
    ) -> None:
        super().__init__(channel, message, code=code)
        self.retry_after = retry_after


class CredentialsRejected(ChannelError):
    api_code = "credentials_rejected"


class ChannelUnreachable(ChannelError):
    api_code = "channel_unreachable"

    def __init__(
        self, channel: ChannelType, message: str, *, code: str = "", never_sent: bool = False
    ) -> None:
        super().__init__(channel, message, code=code)
        self.never_sent = never_sent
